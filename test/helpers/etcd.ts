import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';

/** Where Debian's etcd-server puts the binary; ETCD_BIN overrides it. */
export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  process?: ChildProcess;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Client URLs of every member, for the key service's etcd option. */
  endpoints: string[];
  /** SIGKILLs one member (its data dir stays, so it can rejoin). */
  kill(index: number): Promise<void>;
  /** Restarts a killed member with its data. */
  start(index: number): Promise<void>;
  /** Waits until a linearizable read succeeds through every running member. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real three-member etcd cluster on loopback: each member gets a client and
 * a peer port from `basePort` up (basePort .. basePort+5) and a temp data dir.
 * Tests kill and restart members through the returned handle.
 */
export async function startEtcdCluster(basePort: number, size = 3): Promise<EtcdCluster> {
  const root = await mkdtemp(join(tmpdir(), 'vs-etcd-'));
  const token = `vs-${process.pid}-${basePort}`;
  const members: EtcdMember[] = Array.from({ length: size }, (_, i) => ({
    name: `m${i}`,
    clientUrl: `http://127.0.0.1:${basePort + 2 * i}`,
    peerUrl: `http://127.0.0.1:${basePort + 2 * i + 1}`,
    dataDir: join(root, `m${i}`),
  }));
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');

  const launch = (m: EtcdMember): void => {
    const child = spawn(
      ETCD_BIN,
      [
        '--name',
        m.name,
        '--data-dir',
        m.dataDir,
        '--listen-client-urls',
        m.clientUrl,
        '--advertise-client-urls',
        m.clientUrl,
        '--listen-peer-urls',
        m.peerUrl,
        '--initial-advertise-peer-urls',
        m.peerUrl,
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-token',
        token,
        '--initial-cluster-state',
        'new',
        // Short timers so elections after a kill finish well inside a test.
        '--heartbeat-interval',
        '50',
        '--election-timeout',
        '500',
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    );
    m.process = child;
  };
  members.forEach(launch);

  const kill = async (index: number): Promise<void> => {
    const m = members[index]!;
    const child = m.process;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
    delete m.process;
  };

  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    kill,
    async start(index) {
      launch(members[index]!);
    },
    async waitHealthy(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (const m of members.filter((x) => x.process !== undefined)) {
        const client = new Etcd3({ hosts: m.clientUrl, dialTimeout: 1000 });
        try {
          for (;;) {
            try {
              await client.get('vs-health-probe').string();
              break;
            } catch (err) {
              if (Date.now() > deadline) throw err;
              await new Promise((r) => setTimeout(r, 100));
            }
          }
        } finally {
          client.close();
        }
      }
    },
    async stop() {
      for (let i = 0; i < members.length; i++) await kill(i);
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    await cluster.waitHealthy();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

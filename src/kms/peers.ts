import { kmsErrors, KmsException } from './errors.js';
import { signKmsRequest, type SigningCredentials } from './sigv4-sign.js';
import type { WireInput } from './wire.js';

/** Another region's key service, as this one reaches it for multi-region keys. */
export interface PeerRegion {
  /** Its URL, e.g. `http://127.0.0.1:4700`. Comes from the caller's options, never from stored state. */
  endpoint: string;
  /** An access key of that region allowed `VectorsealSyncReplica` (and nothing more is needed). */
  credentials: SigningCredentials;
}

/** Calls to other regions' key services. */
export interface Peers {
  has(region: string): boolean;
  call(region: string, operation: string, input: WireInput): Promise<WireInput>;
}

/** Peers reached over HTTP(S) with SigV4-signed requests; their exceptions come back as KmsException. */
export function createPeers(regions: Record<string, PeerRegion>, timeoutMs = 5000): Peers {
  return {
    has: (region) => Object.hasOwn(regions, region),
    async call(region, operation, input) {
      const peer = Object.hasOwn(regions, region) ? regions[region] : undefined;
      if (peer === undefined) throw kmsErrors.validation(`Region ${region} is not configured as a peer of this key service`);
      const url = new URL(peer.endpoint);
      const body = JSON.stringify(input);
      const headers = signKmsRequest({ host: url.host, region, target: operation, body, credentials: peer.credentials });
      let res: Response;
      try {
        res = await fetch(new URL('/', url), { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
      } catch {
        throw kmsErrors.dependencyTimeout(`The key service of region ${region} did not answer`);
      }
      const out = (await res.json().catch(() => ({}))) as WireInput;
      if (res.status !== 200) {
        const type = typeof out.__type === 'string' ? out.__type : 'KMSInternalException';
        throw new KmsException(
          type,
          `Region ${region}: ${typeof out.message === 'string' ? out.message : 'request failed'}`,
          res.status >= 500 ? 500 : 400,
        );
      }
      return out;
    },
  };
}

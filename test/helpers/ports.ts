/**
 * A test's fixed loopback port, moved by VS_TEST_PORT_BASE when set: the port
 * becomes base + (port - 46000). Engineers sharing one machine each give their
 * runs their own range (e.g. VS_TEST_PORT_BASE=40200 for 40200-40299); CI and
 * a lone run use the ports as written (.ci/run reserves 46000-46999 from the
 * kernel's ephemeral range, so no outgoing connection takes one first).
 */
export function testPort(port: number): number {
  const base = process.env.VS_TEST_PORT_BASE;
  if (base === undefined || base === '') return port;
  const moved = Number(base) + (port - 46000);
  if (!Number.isInteger(moved) || moved < 1024 || moved > 65535)
    throw new RangeError(`VS_TEST_PORT_BASE=${base} moves port ${port} out of range`);
  return moved;
}

import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * `npm run test:quick`, the edit loop: the in-process unit and integration
 * suites. Left to `npm test`: anything that spawns the CLI or kills child
 * processes, the key service and XKS proxy suites (servers, etcd clusters),
 * SoftHSM2, the reliability campaigns, the packed-app and benchmark checks,
 * the linter's planted-violation test, the slowest tamper, shredding and
 * upgrade suites, and the filtered-search brute-force sweeps.
 */
export default mergeConfig(
  base,
  defineConfig({
    test: {
      exclude: [
        '**/node_modules/**',
        'test/reliability/**',
        'test/kms/**',
        'test/xks/**',
        'test/pkcs11/**',
        'test/bench/**',
        'test/cli/**',
        'test/**/cli.test.ts',
        'test/**/*crash*.test.ts',
        'test/integrations/packed-app.test.ts',
        'test/integrations/readme-examples.test.ts',
        'test/store/plaintext-scan.test.ts',
        'test/store/errors.test.ts',
        'test/store/hostile-input.test.ts',
        'test/store/recall.test.ts',
        'test/trust/kek-injection.test.ts',
        'test/trust/upgrade.test.ts',
        'test/lint/**',
        'test/lifecycle/shredding.test.ts',
        'test/store/tamper.test.ts',
        'test/store/vectors-in-index.test.ts',
        // Child processes (kills, readers beside a writer, the CLI) and the brute-force filter sweeps.
        'test/store/create-batch.test.ts',
        'test/store/readers-process.test.ts',
        'test/store/lazy-open.test.ts',
        'test/store/filtered-search.test.ts',
      ],
    },
  }),
);

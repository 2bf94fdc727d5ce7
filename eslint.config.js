// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      '.data/',
      'coverage/',
      'dist/',
      '.stryker-tmp/',
      '.stryker-tmp-engine/',
      'reports/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // The engine is generic: it knows nothing of payments, the ledger or HTTP.
    files: ['src/engine/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '**/payments/**',
                '**/machine/**',
                '**/accounts/**',
                '**/http/**',
                '**/runtime/payment-*',
              ],
              message: 'src/engine must not depend on payments, the ledger or HTTP.',
            },
            {
              group: ['**/observability/**', 'prom-client', '@opentelemetry/*'],
              message:
                'src/engine reports through its EngineObserver; metrics and tracing live in src/observability.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);

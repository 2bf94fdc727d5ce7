// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The runtime is a library: it imports nothing from the rest of src/ (`up` is
 * the relative path from those files to src/). Patterns match the import as written.
 */
function runtimeBoundary(files, up) {
  return [
    {
      files: [files],
      rules: {
        '@typescript-eslint/no-restricted-imports': [
          'error',
          {
            patterns: [
              {
                group: [`${up}*`, `${up}**`, `!${up}runtime`, `!${up}runtime/**`],
                message: 'src/runtime is a library: it imports nothing from the rest of src/.',
              },
              {
                group: ['prom-client', '@opentelemetry/*', 'express', 'pino'],
                message:
                  'src/runtime reports through its EngineObserver; metrics, tracing and HTTP live outside it.',
              },
            ],
          },
        ],
      },
    },
  ];
}

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
  ...runtimeBoundary('src/runtime/*.ts', '../'),
  ...runtimeBoundary('src/runtime/*/**', '../../'),
  {
    // The payment machine is pure: xstate and its own files, no I/O.
    files: ['src/machine/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../*', '**/src/**'],
              message: 'src/machine is pure: it imports only xstate and its own files.',
            },
            {
              group: ['node:*', 'ioredis', 'bullmq', '@sesamecare-oss/redlock', 'express'],
              message: 'src/machine is pure: no I/O.',
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

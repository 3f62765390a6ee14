import jsdoc from 'eslint-plugin-jsdoc';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/.cache/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // Project rule: JSDoc on every exported member of src/ in every package and app: exported
  // declarations, their interface and type-literal members, and class members other than
  // private, protected and #private ones. Only presence is checked (a block with a
  // description), no tag or style rules. Fixers are off: an empty block is no fix.
  {
    files: ['{packages,apps}/*/src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    plugins: { jsdoc },
    rules: {
      'jsdoc/require-jsdoc': [
        'error',
        {
          publicOnly: true,
          enableFixer: false,
          exemptEmptyConstructors: false,
          // A getter's block documents the property; its setter needs none.
          checkSetters: 'no-getter',
          require: {
            FunctionDeclaration: true,
            ClassDeclaration: true,
            MethodDefinition: true,
          },
          contexts: [
            'TSDeclareFunction',
            'VariableDeclaration',
            'TSInterfaceDeclaration',
            'TSTypeAliasDeclaration',
            'TSEnumDeclaration',
            'TSPropertySignature',
            'TSMethodSignature',
            'PropertyDefinition',
          ],
        },
      ],
      // A block must say something: tags alone (@internal, @param) are not documentation. A class
      // member implementing a documented interface member may take its text with @inheritDoc.
      'jsdoc/require-description': ['error', { contexts: ['any'], exemptedBy: ['inheritDoc'] }],
      'jsdoc/no-blank-blocks': ['error', { enableFixer: false }],
    },
  },
);

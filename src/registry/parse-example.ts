export * from './parse-example/index.ts';

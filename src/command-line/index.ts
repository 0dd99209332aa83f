// The shared command line of the sluice binaries: one declaration of commands
// and flags gives parsing, --help, version and shell completion.
export * from './declaration';
export * from './parse';
export * from './help';
export * from './completion';
export * from './version';
export * from './run';

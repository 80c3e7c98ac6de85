/**
 * Imported first by flow-agent.ts. Its bundle holds workers/node-agent.ts, whose entry check
 * compares import.meta.url with argv[1]; inside one bundle both name the bundle, so that check
 * would start a second agent. Marking argv[1] here, before that module runs, leaves one entry.
 */
process.argv[1] = `${process.argv[1] ?? ''}#flow-agent`;

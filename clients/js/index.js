// SkinDoc's real-time client library (plain ES modules, no build step). See README.md.

export { SkinDocError, networkError } from './src/errors.js';
export { Session } from './src/session.js';
export { Realtime, MAX_FRAME_BYTES } from './src/realtime.js';
export { Conversation, codePoints, messageLimit, DEFAULT_MAX_CHARS } from './src/conversation.js';
export { QueueWatch } from './src/queue.js';

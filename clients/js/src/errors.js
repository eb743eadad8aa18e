// Errors as values a client can act on: the server's status and code (see docs/realtime-api.md), or a local one.

export class SkinDocError extends Error {
  constructor(status, code, detail, field = null) {
    super(detail);
    this.name = 'SkinDocError';
    this.status = status;
    this.code = code;
    this.field = field;
  }

  /** Worth trying again later (no connection, no ack, the server's fault, rate limited). */
  get retryable() { return this.status === 0 || this.status >= 500 || this.status === 429; }

  static fromAck(error) {
    return new SkinDocError(error.status, error.code, error.detail, error.field || null);
  }

  /** From an HTTP error answer: the server's problem document (RFC 9457) when it sent one. */
  static fromProblem(status, problem) {
    return new SkinDocError(status, (problem && problem.code) || 'http_error',
      (problem && problem.detail) || `The server answered ${status}.`, (problem && problem.field) || null);
  }
}

export const noAnswer = () => new SkinDocError(0, 'no_ack', 'No answer from SkinDoc yet; it is tried again when the connection is back.');
export const networkError = () => new SkinDocError(0, 'network', 'No connection to SkinDoc. Check your network and try again.');

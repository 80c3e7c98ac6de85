import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

export interface HttpAnswer {
  status: number;
  body: string;
}

/**
 * One TCP connection that sends HTTP/1.1 requests one after another (keep-alive), as a client of a
 * model server holds it: the tests need to know that a later request travels on the same connection.
 */
export class KeepAliveClient {
  private buffered = '';
  private ended = false;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffered += chunk;
    });
    socket.on('end', () => {
      this.ended = true;
    });
    socket.on('close', () => {
      this.ended = true;
    });
    socket.on('error', () => {
      this.ended = true;
    });
  }

  static async open(host: string, port: number): Promise<KeepAliveClient> {
    const socket = connect({ host, port });
    await once(socket, 'connect');
    return new KeepAliveClient(socket);
  }

  /** The client's own port: the same value before and after proves the same connection. */
  get localPort(): number {
    return this.socket.localPort as number;
  }

  /** Sends GET `path` and reads one response; rejects when the server closed or reset the connection. */
  async get(path: string, timeoutMs = 10_000): Promise<HttpAnswer> {
    if (this.ended || this.socket.destroyed) throw new Error('the connection was closed by the server');
    this.buffered = '';
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const answer = parseResponse(this.buffered);
      if (answer) return answer;
      if (this.ended) throw new Error('the connection was closed by the server');
      if (Date.now() > deadline) throw new Error(`no answer to GET ${path} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

function parseResponse(text: string): HttpAnswer | undefined {
  const headerEnd = text.indexOf('\r\n\r\n');
  if (headerEnd < 0) return undefined;
  const head = text.slice(0, headerEnd);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? Number.NaN);
  const body = text.slice(headerEnd + 4);
  if (Number.isNaN(length) || body.length < length) return undefined;
  return { status, body: body.slice(0, length) };
}

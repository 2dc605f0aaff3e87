// The smallest socket.io server the SDK's notification channel needs (engine.io v4 / socket.io v5,
// WebSocket transport only): open packet, namespace CONNECT ack, heartbeats, and broadcast events.
//
// Why serve it at all: `new Daytona()` connects at once, and a client whose upgrade is refused keeps
// reconnecting, which keeps its Node process alive for minutes after its work is done. Once connected,
// the SDK unrefs the socket, so a process exits as soon as its own work is over.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';

const PING_INTERVAL_MS = 25_000;

export class SocketIoHub {
  private readonly wss = new WebSocketServer({ noServer: true });
  /** sockets that completed the namespace CONNECT and receive events */
  private readonly joined = new Set<WebSocket>();
  private readonly onConnect: () => void;

  constructor(onConnect: () => void) {
    this.onConnect = onConnect;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    if (url.searchParams.get('transport') !== 'websocket' || url.searchParams.get('EIO') !== '4') {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(ws));
  }

  private serve(ws: WebSocket): void {
    this.onConnect();
    const sid = randomBytes(10).toString('base64url');
    ws.send(`0${JSON.stringify({ sid, upgrades: [], pingInterval: PING_INTERVAL_MS, pingTimeout: 20_000, maxPayload: 1_000_000 })}`);
    const ping = setInterval(() => ws.send('2'), PING_INTERVAL_MS);
    ping.unref();
    ws.on('message', (data) => {
      const text = String(data);
      if (text === '2') ws.send('3'); // a client ping (probe): answer pong
      else if (text.startsWith('40')) {
        // Namespace CONNECT, auth `{token}` in the payload; any token is accepted and none is kept.
        ws.send(`40${JSON.stringify({ sid: randomBytes(10).toString('base64url') })}`);
        this.joined.add(ws);
      } else if (text.startsWith('41')) this.joined.delete(ws);
      else if (text === '1') ws.close();
    });
    ws.on('close', () => {
      clearInterval(ping);
      this.joined.delete(ws);
    });
    ws.on('error', () => undefined);
  }

  emit(event: string, payload: unknown): void {
    const packet = `42${JSON.stringify([event, payload])}`;
    for (const ws of this.joined) if (ws.readyState === ws.OPEN) ws.send(packet);
  }

  close(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

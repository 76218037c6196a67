import { randomUUID } from 'node:crypto';
import { PuppetServer } from 'wechaty-puppet-service';
import { mock, PuppetMock } from 'wechaty-puppet-mock';
import { freePort, waitFor } from './form.ts';

/**
 * A WeChat puppet-service provider on 127.0.0.1, as operators run against one: the
 * `wechaty-puppet-service` gRPC server (no TLS, an `insecure_<uuid>` token) serving a
 * `PuppetMock` that plays WeChat. The test drives the mock (contacts say things, the bot
 * account logs in) and may stop the gRPC server and start it again on the same port.
 *
 * Like hosted providers, it keeps the messages that arrive while no client is connected
 * and delivers them once a client is back (the stock server would drop them).
 */
export interface MockProvider {
  port: number;
  endpoint: string;
  token: string;
  mocker: mock.Mocker;
  puppet: PuppetMock;
  /** The environment the product needs to reach this provider. */
  env: Record<string, string>;
  /** Messages kept while no client was connected, then delivered. */
  replayed: number;
  /** Whether a client's event stream is connected now. */
  connected(): boolean;
  start(): Promise<void>;
  /** Shuts the gRPC server down (open streams break at once); the mock keeps its state. */
  stop(): Promise<void>;
  close(): Promise<void>;
}

export async function startMockProvider(opts: { port?: number; listen?: boolean } = {}): Promise<MockProvider> {
  const port = opts.port ?? (await freePort());
  const token = `insecure_${randomUUID()}`;
  const endpoint = `127.0.0.1:${port}`;
  const mocker = new mock.Mocker();
  const puppet = new PuppetMock({ mocker });
  let server: PuppetServer | undefined;
  const kept: Array<{ messageId: string }> = [];
  // Our own listener is one; a connected client's event stream adds its own.
  const connected = () => puppet.listenerCount('message') > 1;
  puppet.on('message', (p: { messageId: string }) => {
    if (!connected()) kept.push(p);
  });
  let flushing: NodeJS.Timeout | undefined;
  const provider: MockProvider = {
    port,
    endpoint,
    token,
    mocker,
    puppet,
    env: {
      WECHATY_PUPPET: 'wechaty-puppet-service',
      WECHATY_PUPPET_SERVICE_TOKEN: token,
      WECHATY_PUPPET_SERVICE_ENDPOINT: endpoint,
      WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_CLIENT: 'true',
    },
    replayed: 0,
    connected,
    async start() {
      if (server) return;
      server = new PuppetServer({ puppet, endpoint, token, tls: { disable: true } });
      await server.start();
      // Deliver what was kept once a client's stream is back (after its login replay).
      flushing = setInterval(() => {
        if (!kept.length || !connected() || !puppet.isLoggedIn) return;
        setTimeout(() => {
          for (const p of kept.splice(0)) {
            provider.replayed++;
            puppet.emit('message', p);
          }
        }, 300);
      }, 100);
    },
    async stop() {
      if (flushing) clearInterval(flushing);
      const s = server;
      server = undefined;
      await s?.stop();
      await waitFor(() => !connected(), 5000, 'the provider to drop its client stream');
    },
    async close() {
      await provider.stop();
      await puppet.stop().catch(() => undefined);
    },
  };
  if (opts.listen !== false) await provider.start();
  return provider;
}

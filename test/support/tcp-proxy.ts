// The proxy lives in tools/harness (the chaos run uses it too); tests may import it from here.
export { TcpProxy } from '../../tools/harness/tcp-proxy.js';

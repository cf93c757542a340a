// Reading the node's API: JSON over fetch with a deadline, and websockets that reconnect.

const REQUEST_TIMEOUT_MS = 15000;
// Reconnection waits double from the first to the last, then stay there.
const RECONNECT_FIRST_MS = 1000;
const RECONNECT_LAST_MS = 30000;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// GET a JSON document. With `missingIsNull`, a 404 is `null` rather than an error.
export async function getJson(path, { missingIsNull = false } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  let response;
  try {
    response = await fetch(path, { signal: controller.signal, headers: { accept: 'application/json' } });
  } catch (error) {
    throw new ApiError(0, controller.signal.aborted
      ? `the node did not answer ${path} within ${REQUEST_TIMEOUT_MS / 1000} s`
      : `the node could not be reached (${error.message})`);
  } finally {
    clearTimeout(timer);
  }
  if (response.status === 404 && missingIsNull) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const reason = body && typeof body.error === 'string' ? body.error : response.statusText;
    throw new ApiError(response.status, `${response.status}: ${reason}`);
  }
  return body;
}

// A query string of the filters that have a value.
export function query(params) {
  const kept = Object.entries(params).filter(([, value]) => value != null && value !== '');
  return new URLSearchParams(kept).toString();
}

// Follows a websocket of this node: `onFrame` gets each parsed JSON frame, `onState` the
// words 'live' or 'reconnecting'. Returns a function that closes it for good.
export function follow(path, { onFrame, onState = () => {} }) {
  let socket = null;
  let closed = false;
  let wait = RECONNECT_FIRST_MS;
  let timer = null;
  const open = () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.addEventListener('open', () => {
      wait = RECONNECT_FIRST_MS;
      onState('live');
    });
    socket.addEventListener('message', (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not JSON (e.g. a close request): nothing to show
      }
      onFrame(frame);
    });
    socket.addEventListener('close', () => {
      if (closed) return;
      onState('reconnecting');
      timer = setTimeout(open, wait);
      wait = Math.min(wait * 2, RECONNECT_LAST_MS);
    });
  };
  open();
  return () => {
    closed = true;
    clearTimeout(timer);
    socket?.close();
  };
}

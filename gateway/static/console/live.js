// Server-sent events over fetch (so the bearer token travels in a header),
// with reconnect-and-resume through Last-Event-ID.

const MAX_BACKOFF = 8000;

function parseBlock(block) {
  const event = { id: null, type: 'message', data: '' };
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') event.id = value;
    else if (field === 'event') event.type = value;
    else if (field === 'data') data.push(value);
  }
  event.data = data.join('\n');
  return event;
}

/**
 * Follow /api/v1/stream. Handlers: onEvent({id, type, data}), onState('live'|'polling'|
 * 'reconnecting'|'unauthorized'), onConnect(resumed: boolean). Returns {close()}.
 */
export function follow({ token, onEvent, onState, onConnect }) {
  let lastId = null;
  let stopped = false;
  let controller = null;
  let backoff = 250;

  async function once() {
    controller = new AbortController();
    const headers = { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' };
    if (lastId) headers['Last-Event-ID'] = lastId;
    const response = await fetch('/api/v1/stream', { headers, cache: 'no-store', signal: controller.signal });
    if (response.status === 401 || response.status === 403) {
      onState('unauthorized');
      stopped = true;
      return;
    }
    if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
    onConnect(Boolean(lastId));
    backoff = 250;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = blocks.pop();
      for (const block of blocks) {
        const event = parseBlock(block);
        if (event.id) lastId = event.id;
        if (!event.data && event.type === 'message') continue;
        let data = null;
        try { data = JSON.parse(event.data); } catch { data = event.data; }
        onEvent({ id: event.id, type: event.type, data });
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await once();
      } catch (err) {
        if (stopped) return;
      }
      if (stopped) return;
      onState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF);
    }
  })();

  return {
    close() { stopped = true; if (controller) controller.abort(); },
    lastId() { return lastId; },
  };
}

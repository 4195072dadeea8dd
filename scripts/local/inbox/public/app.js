// The dev inbox page: the message list (status + each recipient's outcome), one message as the dev SMTP server
// received it, and every attempt's transcript. Untrusted text only ever goes through textContent; the HTML body
// is loaded into a sandboxed iframe from a URL served with a CSP sandbox.
const $ = (selector) => document.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child ?? '');
  return node;
}

async function getJson(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function stateBadge(state) {
  return el('span', { class: `state state-${state}`, 'data-state': state }, state);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

let selectedId = null;

async function renderList() {
  const { messages, other, relay } = await getJson('/_inbox/api/messages');
  // The relay's shared pause (a throttling reply made every worker wait), while it lasts.
  const paused = relay?.pausedUntil && Date.parse(relay.pausedUntil) > Date.now();
  const relayLine = $('#relay');
  relayLine.hidden = !paused;
  relayLine.textContent = paused
    ? `relay paused until ${when(relay.pausedUntil)} (level ${relay.pauseLevel}): ${relay.reason ?? 'throttled'}`
    : '';
  const body = $('#messages tbody');
  body.replaceChildren(
    ...messages.map((m) => {
      const recipients = el(
        'td',
        { class: 'recipients' },
        ...m.recipients.flatMap((r, i) => [
          i > 0 ? ', ' : '',
          el('span', { class: `recipient state-${r.state}`, title: r.state }, `${r.address} (${r.state})`),
        ]),
      );
      const row = el(
        'tr',
        { 'data-message-id': m.id, class: m.id === selectedId ? 'selected' : undefined },
        el('td', {}, stateBadge(m.state)),
        el('td', { class: 'subject' }, m.subject ?? el('span', { class: 'muted' }, '(no subject)')),
        recipients,
        el('td', { class: 'muted' }, when(m.createdAt)),
      );
      row.addEventListener('click', () => {
        location.hash = `#/m/${m.id}`;
      });
      return row;
    }),
  );
  $('#empty').hidden = messages.length > 0;
  const otherList = $('#other-mail ul');
  otherList.replaceChildren(
    ...other.map((mail) =>
      el(
        'li',
        {},
        el(
          'a',
          { href: `/_inbox/api/mail/${mail.id}/raw`, target: '_blank' },
          mail.subject ?? '(no subject)',
        ),
        ` — ${mail.envelope.from} → ${mail.envelope.to.join(', ')}, ${when(mail.receivedAt)}`,
      ),
    ),
  );
  $('#other-mail').hidden = other.length === 0;
}

function showTab(name) {
  for (const button of document.querySelectorAll('.tabs button')) {
    button.classList.toggle('active', button.dataset.tab === name);
  }
  for (const panel of document.querySelectorAll('[data-panel]')) panel.hidden = panel.dataset.panel !== name;
}

async function renderMail(mail) {
  const parsed = await getJson(`/_inbox/api/mail/${mail.id}`);
  $('#raw-link').href = `/_inbox/api/mail/${mail.id}/raw`;
  // The frame is reused from message to message: a text-only mail must not keep showing the previous HTML.
  const frame = $('#html-body');
  const htmlUrl = parsed.hasHtml ? `/_inbox/api/mail/${mail.id}/html` : 'about:blank';
  if (frame.getAttribute('src') !== htmlUrl) frame.setAttribute('src', htmlUrl);
  const htmlTab = document.querySelector('.tabs button[data-tab="html"]');
  htmlTab.disabled = !parsed.hasHtml;
  $('#text-body').textContent = parsed.text;
  $('#headers').textContent = parsed.headers.join('\n');
  $('#attachments').replaceChildren(
    ...(parsed.attachments.length === 0
      ? [el('li', { class: 'muted' }, 'none')]
      : parsed.attachments.map((a) =>
          el(
            'li',
            {},
            el(
              'a',
              { href: `/_inbox/api/mail/${mail.id}/attachments/${a.index}` },
              a.filename ?? `attachment ${a.index}`,
            ),
            ` ${a.contentType}, ${a.size} bytes`,
          ),
        )),
  );
  const active = document.querySelector('.tabs button.active:not(:disabled)')?.dataset.tab;
  showTab(active ?? (parsed.hasHtml ? 'html' : 'text'));
}

async function renderTranscripts(record) {
  const container = $('#transcripts');
  const count = Math.max(record.attempts ?? 0, record.transcripts?.length ?? 0);
  if (count === 0) {
    container.replaceChildren(el('p', { class: 'muted' }, 'No attempt yet.'));
    return;
  }
  const blocks = [];
  for (let attempt = 1; attempt <= count; attempt++) {
    const response = await fetch(`/v1/messages/${record.id}/transcript?attempt=${attempt}`, {
      cache: 'no-store',
    });
    const text = response.ok ? await response.text() : `(no transcript: HTTP ${response.status})`;
    blocks.push(
      el('h4', {}, `Attempt ${attempt}`),
      el('pre', { class: 'transcript', 'data-attempt': String(attempt) }, text),
    );
  }
  container.replaceChildren(...blocks);
}

/** One webhook try, as a short text: "500, retry 10:00:05" or "204". */
function webhookTry(attempt) {
  const answer = attempt.status ? String(attempt.status) : (attempt.error ?? 'no answer');
  return attempt.retryAt ? `${answer}, retry ${when(attempt.retryAt)}` : answer;
}

function renderEvents(timeline) {
  const events = timeline?.events ?? [];
  const webhooks = timeline?.webhooks ?? [];
  $('#no-webhook').hidden = webhooks.length > 0;
  $('#events tbody').replaceChildren(
    ...(events.length === 0
      ? [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'No event yet.'))]
      : events.map((e) => {
          const tries = webhooks.filter((w) => w.eventId === e.id);
          const reply = e.data.reply ? `${e.data.reply.code} ${e.data.reply.text}` : (e.data.error ?? '');
          return el(
            'tr',
            { 'data-event': e.type, 'data-event-id': e.id },
            el('td', {}, when(e.timestamp)),
            el('td', {}, e.type),
            el('td', {}, e.data.recipient ?? ''),
            el('td', { class: 'muted' }, reply),
            el(
              'td',
              { class: 'webhook-tries' },
              tries.length === 0 ? '' : tries.map((t) => `#${t.try} ${webhookTry(t)}`).join(' · '),
            ),
          );
        })),
  );
}

async function renderDetail() {
  const detail = $('#detail');
  if (!selectedId) {
    detail.hidden = true;
    return;
  }
  const { status, mails, timeline } = await getJson(`/_inbox/api/messages/${encodeURIComponent(selectedId)}`);
  detail.hidden = false;
  detail.dataset.messageId = status.id;
  $('#detail-subject').textContent = status.subject ?? '(no subject)';
  const meta = [
    ['Status', stateBadge(status.state)],
    ['Id', status.id],
    ['From', status.from],
    ['Message-ID', status.messageId],
    ['Created', when(status.createdAt)],
    ['Updated', when(status.updatedAt)],
    ['Attempts', String(status.attempts)],
  ];
  if (status.nextAttemptAt) meta.push(['Next attempt', when(status.nextAttemptAt)]);
  if (status.error) meta.push(['Error', status.error]);
  $('#detail-meta').replaceChildren(
    ...meta.flatMap(([name, value]) => [el('dt', {}, name), el('dd', {}, value)]),
  );
  $('#recipients tbody').replaceChildren(
    ...status.recipients.map((r) =>
      el(
        'tr',
        { 'data-address': r.address },
        el('td', {}, r.address),
        el('td', {}, r.kind),
        el('td', {}, stateBadge(r.state)),
        el(
          'td',
          { class: 'muted' },
          // The reply's text already starts with its enhanced code, when the server sent one.
          r.reply ? `${r.reply.code} ${r.reply.lines.join(' ')}` : (r.error ?? ''),
        ),
      ),
    ),
  );
  renderEvents(timeline);
  const mail = mails[0];
  $('#no-mail').hidden = Boolean(mail);
  $('#mail').hidden = !mail;
  if (mail) await renderMail(mail);
  await renderTranscripts(status);
}

let refreshing = null;
let again = false;

/** One refresh at a time; changes that arrive meanwhile cause exactly one more. */
async function refresh() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      again = false;
      try {
        await renderList();
        await renderDetail();
      } catch (error) {
        console.error(error);
      }
    } while (again);
  })();
  await refreshing;
  refreshing = null;
}

function route() {
  const match = /^#\/m\/([A-Za-z0-9_-]+)$/.exec(location.hash);
  selectedId = match ? match[1] : null;
  refresh();
}

function connect() {
  const live = $('#live');
  const events = new EventSource('/_inbox/api/events');
  events.addEventListener('open', () => {
    live.textContent = 'live';
    live.classList.add('on');
    refresh();
  });
  events.addEventListener('change', () => refresh());
  events.addEventListener('error', () => {
    live.textContent = 'reconnecting…';
    live.classList.remove('on');
  });
}

for (const button of document.querySelectorAll('.tabs button')) {
  button.addEventListener('click', () => showTab(button.dataset.tab));
}
window.addEventListener('hashchange', route);
route();
connect();

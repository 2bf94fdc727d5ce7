/* global document, fetch, setInterval, clearInterval, URLSearchParams, window, CSS, ResizeObserver, getComputedStyle */
// The inspector page: live counts, a key's state and history, a state's newest keys.
'use strict';

(() => {
  const base = document.body.dataset.base;
  const $ = (id) => document.getElementById(id);
  const nodes = () => document.querySelectorAll('.statechart .state-node');
  let watched = null;
  let keyTimer = null;

  const getJson = async (path) => {
    const response = await fetch(base + path, { headers: { accept: 'application/json' } });
    const body = await response.json().catch(() => null);
    return { status: response.status, body };
  };

  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  };

  async function refreshCounts() {
    try {
      const { status, body } = await getJson('/api/counts');
      if (status !== 200) throw new Error(String(status));
      for (const [state, count] of Object.entries(body.counts)) {
        const text = document.querySelector(`[data-count-for="${CSS.escape(state)}"]`);
        if (text) text.textContent = String(count);
        const node = document.querySelector(`.state-node[data-state="${CSS.escape(state)}"]`);
        if (node) node.classList.toggle('occupied', count > 0);
      }
      $('live').classList.remove('stale');
      $('live').textContent = 'live';
    } catch {
      $('live').classList.add('stale');
      $('live').textContent = 'reconnecting';
    }
  }

  function showMessage(text, error) {
    const message = $('message');
    message.hidden = false;
    message.textContent = text;
    message.classList.toggle('error', Boolean(error));
  }

  function highlight(state, history) {
    const visited = new Set(history.map((h) => h.state));
    for (const node of nodes()) {
      node.classList.toggle('active', node.dataset.state === state);
      node.classList.toggle('visited', visited.has(node.dataset.state));
    }
    const taken = new Set();
    for (let i = 1; i < history.length; i++) {
      taken.add(`${history[i - 1].state}\u0000${history[i].state}\u0000${history[i].event}`);
    }
    for (const edge of document.querySelectorAll('.statechart .edge, .statechart .edge-label')) {
      const label = edge.dataset.event.split(' [')[0];
      edge.classList.toggle(
        'taken',
        taken.has(`${edge.dataset.from}\u0000${edge.dataset.to}\u0000${label}`),
      );
    }
  }

  function clearHighlight() {
    for (const node of nodes()) node.classList.remove('active', 'visited');
    for (const edge of document.querySelectorAll('.taken')) edge.classList.remove('taken');
  }

  async function showKey(key) {
    const { status, body } = await getJson(`/api/keys/${encodeURIComponent(key)}`);
    if (watched !== key) return;
    if (status !== 200) {
      $('found').hidden = true;
      clearHighlight();
      showMessage(
        status === 404
          ? `No record for ${key}.`
          : (body && body.error && body.error.message) || `Error ${status}`,
        true,
      );
      return;
    }
    $('message').hidden = true;
    $('found').hidden = false;
    $('found-key').textContent = body.key;
    $('found-state').textContent = body.state;
    const fields = $('found-fields');
    fields.replaceChildren();
    for (const [name, value] of Object.entries(body.fields)) {
      if (value === null) continue;
      fields.append(el('dt', {}, name), el('dd', {}, String(value)));
    }
    const history = $('history');
    history.replaceChildren(
      ...body.history.map((step) =>
        el(
          'li',
          { 'data-state': step.state, 'data-event': step.event },
          el('time', { datetime: step.at }, step.at.replace('T', ' ').replace('Z', ' UTC')),
          el('span', { class: 'event' }, step.event),
          ' → ',
          el('span', { class: 'state' }, step.state),
        ),
      ),
    );
    if (body.history.length === 0) history.append(el('li', {}, 'This machine keeps no history.'));
    highlight(body.state, body.history);
  }

  function watch(key) {
    watched = key;
    if (keyTimer !== null) clearInterval(keyTimer);
    const params = new URLSearchParams(window.location.search);
    params.set('key', key);
    window.history.replaceState(null, '', `${window.location.pathname}?${params}`);
    void showKey(key);
    keyTimer = setInterval(() => void showKey(key), 2000);
  }

  async function listState(state) {
    for (const node of nodes()) node.classList.toggle('selected', node.dataset.state === state);
    const { status, body } = await getJson(`/api/states/${encodeURIComponent(state)}`);
    if (status !== 200) return;
    $('listing').hidden = false;
    $('listing-state').textContent = state;
    const list = $('listing-keys');
    list.replaceChildren(
      ...body.keys.map((entry) => {
        const link = el('a', { 'data-key': entry.key, tabindex: '0' }, entry.key);
        link.addEventListener('click', () => {
          $('key').value = entry.key;
          watch(entry.key);
        });
        return el(
          'li',
          {},
          link,
          el('time', { datetime: entry.updatedAt }, entry.updatedAt.slice(11, 19)),
        );
      }),
    );
    if (body.keys.length === 0) list.append(el('li', {}, 'none'));
  }

  $('search').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('key').value.trim();
    if (key !== '') watch(key);
  });
  for (const node of nodes()) {
    node.addEventListener('click', () => void listState(node.dataset.state));
    node.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') void listState(node.dataset.state);
    });
  }

  // The diagram at the largest scale that fits its area, within these bounds:
  // below the smallest its text would be unreadable, so it scrolls instead.
  const SMALLEST = 0.45;
  const LARGEST = 1.5;
  const canvas = document.querySelector('.canvas');
  const chart = document.querySelector('.canvas .statechart');
  if (canvas && chart) {
    const [, , width, height] = chart.getAttribute('viewBox').split(' ').map(Number);
    const fit = () => {
      const style = getComputedStyle(canvas);
      const across =
        canvas.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      const down =
        canvas.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
      const scale = Math.min(LARGEST, Math.max(SMALLEST, Math.min(across / width, down / height)));
      chart.setAttribute('width', String(Math.floor(width * scale)));
      chart.setAttribute('height', String(Math.floor(height * scale)));
    };
    fit();
    new ResizeObserver(fit).observe(canvas);
  }

  void refreshCounts();
  setInterval(() => void refreshCounts(), 1000);
  const initial = new URLSearchParams(window.location.search).get('key');
  if (initial) {
    $('key').value = initial;
    watch(initial);
  }
})();

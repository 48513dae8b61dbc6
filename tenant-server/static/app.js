// TaskHarbor dashboard: vanilla JS, no build step. Every change goes
// through the same /api routes agents use, authenticated by the session
// cookie plus the X-CSRF-Token header.
'use strict';
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const csrfMeta = $('meta[name="csrf-token"]');
  const CSRF = csrfMeta ? csrfMeta.content : '';

  // One fetch wrapper: JSON in and out, API.md errors as thrown Error
  // objects carrying status, code and the API's own message.
  async function api(method, path, body, headers) {
    const init = { method, credentials: 'same-origin', headers: Object.assign({ 'X-CSRF-Token': CSRF }, headers || {}) };
    if (body !== undefined) { init.body = JSON.stringify(body); init.headers['Content-Type'] = 'application/json'; }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (!res.ok) {
      const err = new Error((data && data.error && data.error.message) || ('HTTP ' + res.status));
      err.status = res.status; err.code = data && data.error ? data.error.code : ''; err.data = data;
      throw err;
    }
    return { data, res };
  }

  function toast(text) {
    const t = $('#toast');
    if (!t) return;
    t.textContent = text; t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  function showMsg(el, text, ok) {
    if (!el) return;
    el.textContent = text || '';
    el.hidden = !text;
    el.classList.toggle('ok-text', !!ok);
    el.classList.toggle('error-text', !ok);
  }

  // ---- generic API forms and buttons: data-api="METHOD /path" ----
  function setPath(obj, name, value) {
    const parts = name.split('.');
    let o = obj;
    for (let i = 0; i < parts.length - 1; i++) o = o[parts[i]] = o[parts[i]] || {};
    o[parts[parts.length - 1]] = value;
  }

  function formBody(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      const type = el.dataset.type || 'text';
      let v = el.value;
      if (type === 'bool') { setPath(body, el.name, el.checked); continue; }
      if (type === 'keys') continue; // resolved to ids by resolveKeys()
      if (type === 'duration') {
        // A number in the unit chosen beside it, sent as whole seconds.
        const unit = form.querySelector('select[data-unit-for="' + el.name + '"]');
        setPath(body, el.name, Math.round(parseFloat(v) * (unit ? parseInt(unit.value, 10) : 1)));
        continue;
      }
      if (type === 'multi') { if (!body[el.name]) body[el.name] = []; if (el.checked) body[el.name].push(v); continue; }
      if (el.type === 'checkbox') { if (el.checked) setPath(body, el.name, v); continue; }
      if (type === 'nullint') { setPath(body, el.name, v.trim() === '' ? null : parseInt(v, 10)); continue; }
      if (v.trim() === '' && el.tagName !== 'TEXTAREA' && el.name !== 'body') continue;
      if (type === 'int') v = parseInt(v, 10);
      else if (type === 'list') v = v.split(',').map((s) => s.trim()).filter(Boolean);
      else if (type === 'ids') v = v.split(/[\s,]+/).filter(Boolean).map((s) => parseInt(s, 10));
      else if (type === 'datetime') v = new Date(v).toISOString();
      setPath(body, el.name, v);
    }
    return body;
  }

  function splitApi(spec) {
    const i = spec.indexOf(' ');
    return [spec.slice(0, i), spec.slice(i + 1)];
  }

  async function afterApi(el, then, data) {
    if (then === 'reload') { location.reload(); return; }
    if (then === 'sync-linked') { showSyncLinked(el, data); return; }
    if (then === 'secret') {
      const panel = el.closest('.panel') && $('.secret', el.closest('.panel'));
      if (panel && data) {
        $('.secret-value', panel).textContent = data.token || data.secret || data.webhook_secret || '';
        panel.hidden = false;
        const copy = $('[data-copy]', panel);
        if (copy) copy.focus();
      }
      if (el.tagName === 'FORM') el.reset();
      if (window.loadWebhooks) window.loadWebhooks();
      return;
    }
    if (then === 'card' && data && data.id) {
      await refreshCard(data.id);
      if (el.tagName === 'FORM') { el.reset(); const first = $('input[name=title]', el); if (first) first.focus(); }
    }
  }

  document.addEventListener('submit', async (ev) => {
    const form = ev.target;
    // Plain form posts that change something ask first.
    if (!form.dataset.api) { if (form.dataset.confirm && !confirm(form.dataset.confirm)) ev.preventDefault(); return; }
    ev.preventDefault();
    const [method, path] = splitApi(form.dataset.api);
    const msg = $('.msg', form);
    const button = $('button[type=submit]', form);
    if (button) button.disabled = true;
    try {
      const { data } = await api(method, path, formBody(form));
      showMsg(msg, 'Saved.', true);
      setTimeout(() => showMsg(msg, '', true), 2500);
      await afterApi(form, form.dataset.then, data);
    } catch (e) {
      showMsg(msg, e.message, false);
    } finally {
      if (button) button.disabled = false;
    }
  });

  document.addEventListener('click', async (ev) => {
    const button = ev.target.closest('button[data-api]');
    if (button) {
      ev.preventDefault();
      if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
      const [method, path] = splitApi(button.dataset.api);
      const msg = $('.msg', button.closest('form, .work, section, li, tr') || document.body);
      try {
        const { data } = await api(method, path, button.dataset.body ? JSON.parse(button.dataset.body) : undefined);
        await afterApi(button, button.dataset.then, data);
      } catch (e) {
        if (msg) showMsg(msg, e.message, false); else toast(e.message);
      }
      return;
    }
    const copy = ev.target.closest('[data-copy]');
    if (copy) {
      const value = $('.secret-value', copy.closest('.secret')).textContent;
      try { await navigator.clipboard.writeText(value); copy.textContent = 'Copied'; } catch (_) {
        const range = document.createRange(); range.selectNodeContents($('.secret-value', copy.closest('.secret')));
        const sel = getSelection(); sel.removeAllRanges(); sel.addRange(range); copy.textContent = 'Selected: press Ctrl+C';
      }
    }
  });

  // ---- board settings: the sync panel (the same REST API agents use) ----
  // A new link shows its webhook URL and secret once, in place of the form.
  function showSyncLinked(form, link) {
    const box = $('.secret', form.closest('.panel'));
    if (!box || !link) { location.reload(); return; }
    $('.secret-value', box).textContent = link.webhook_secret || '';
    $('.sync-webhook-url', box).textContent = link.webhook_url || '';
    form.hidden = true;
    box.hidden = false;
    const copy = $('[data-copy]', box);
    if (copy) copy.focus();
  }

  // Pause and resume: the link PUT again as it is, with `enabled` flipped
  // and no token (the server keeps the stored one).
  const syncPanel = $('#sync[data-board]');
  if (syncPanel) {
    syncPanel.addEventListener('click', async (ev) => {
      const toggle = ev.target.closest('button[data-sync-enabled]');
      if (!toggle) return;
      const path = '/api/boards/' + syncPanel.dataset.board + '/sync';
      toggle.disabled = true;
      try {
        const { data: link } = await api('GET', path);
        await api('PUT', path, {
          provider: link.provider, repo: link.repo, api_url: link.api_url, import: link.import,
          comments: link.comments, enabled: toggle.dataset.syncEnabled === 'true',
        });
        location.reload();
      } catch (e) {
        showMsg($('.msg', syncPanel), e.message, false);
        toggle.disabled = false;
      }
    });
  }

  // ---- lease countdowns ----
  function tickLeases() {
    const now = Date.now();
    for (const t of $$('time[data-lease]')) {
      const left = Math.round((parseInt(t.dataset.lease, 10) - now) / 1000);
      let text;
      if (!(left > 0)) text = 'lease ended';
      else if (left < 120) text = left + ' s left';
      else if (left < 7200) text = Math.floor(left / 60) + ' min left';
      else if (left < 172800) text = Math.floor(left / 3600) + ' h left';
      else text = Math.floor(left / 86400) + ' d left';
      if (t.textContent !== text) t.textContent = text;
      t.classList.toggle('soon', left < 300);
    }
  }
  if ($('time[data-lease]') || $('#board')) { tickLeases(); setInterval(tickLeases, 1000); }

  // ---- the board ----
  const board = $('#board');
  const BOARD_ID = board ? board.dataset.board : null;

  function laneOf(id) { return $('section.lane[data-lane-id="' + id + '"]', board); }

  function updateCounts() {
    for (const lane of $$('section.lane', board)) {
      const n = $$('li.card', lane).length;
      const wip = parseInt(lane.dataset.wip, 10);
      const count = $('.count', lane);
      count.textContent = wip ? n + ' / ' + wip : String(n);
      lane.classList.toggle('full', !!wip && n >= wip);
      lane.classList.toggle('over', !!wip && n > wip);
    }
  }

  // Cards are inserted in priority order, as the server renders them.
  function placeCard(card) {
    const lane = laneOf(card.dataset.lane);
    if (!lane) { card.remove(); return; }
    const list = $('ol.cards', lane);
    const prio = (c) => parseInt(($('.prio', c) || { textContent: 'P2' }).textContent.slice(1), 10);
    const key = (c) => [prio(c), parseInt(c.dataset.id, 10)];
    const mine = key(card);
    const next = $$('li.card', list).find((c) => { if (c === card) return false; const k = key(c); return k[0] > mine[0] || (k[0] === mine[0] && k[1] > mine[1]); });
    if (card.parentNode !== list || card.nextElementSibling !== next) list.insertBefore(card, next || null);
  }

  // A card being dragged or moved is not replaced under the pointer; its
  // refresh waits until the drag or the move is over.
  const dragging = new Set();
  const moving = new Set();
  const deferred = new Set();
  // A card whose menu is open is not replaced under the user either.
  const menuOpen = (id) => !!$('#item-' + id + ' details.card-menu[open]');
  const isBusy = (id) => dragging.has(String(id)) || moving.has(String(id)) || menuOpen(id);
  function settle(id) {
    if (!isBusy(id) && deferred.delete(String(id))) refreshCard(id);
  }

  // One refresh per card at a time; an event arriving meanwhile re-runs it
  // afterwards, so the last answer wins and a card is never inserted twice.
  const inflight = new Map();
  const again = new Set();
  function refreshCard(id) {
    if (!board) return Promise.resolve();
    id = String(id);
    if (isBusy(id)) { deferred.add(id); return Promise.resolve(); }
    if (inflight.has(id)) { again.add(id); return inflight.get(id); }
    const run = fetchCard(id).finally(() => {
      inflight.delete(id);
      if (again.delete(id)) refreshCard(id);
    });
    inflight.set(id, run);
    return run;
  }

  async function fetchCard(id) {
    const res = await fetch('/boards/' + BOARD_ID + '/cards/' + id, { credentials: 'same-origin' });
    // Look the card up after the await: the DOM may have changed meanwhile.
    const existing = $('#item-' + id);
    if (res.status === 404) { if (existing) existing.remove(); updateCounts(); return; }
    if (!res.ok || isBusy(id)) { if (res.ok) deferred.add(id); return; }
    const tpl = document.createElement('template');
    tpl.innerHTML = (await res.text()).trim();
    const card = tpl.content.firstElementChild;
    if (!card) return;
    const current = $('#item-' + id);
    const active = document.activeElement;
    const hadFocus = current && current.contains(active) ? (active === current ? 'card' : active.dataset.act) : null;
    if (current) { card.tabIndex = current.tabIndex; current.replaceWith(card); }
    placeCard(card);
    applyFilters();
    updateCounts();
    tickLeases();
    if (hadFocus === 'card') card.focus();
    else if (hadFocus) { const b = $('[data-act="' + hadFocus + '"]', card); if (b) b.focus(); }
  }
  window.refreshCard = refreshCard;

  // The refusal shows on the card while it snaps back, then clears once
  // the card has settled (and at the card's next action).
  function cardError(card, text) {
    const msg = $('.msg', card);
    showMsg(msg, text, false);
    card.classList.add('rejected');
    setTimeout(() => card.classList.remove('rejected'), 1200);
    clearTimeout(card.msgTimer);
    card.msgTimer = setTimeout(() => { const c = $('#item-' + card.dataset.id); if (c) showMsg($('.msg', c), '', false); }, 5000);
  }
  function clearCardError(card) { clearTimeout(card.msgTimer); showMsg($('.msg', card), '', false); }

  async function moveCard(card, laneId) {
    const id = card.dataset.id;
    const from = { parent: card.parentNode, next: card.nextElementSibling, lane: card.dataset.lane };
    if (String(laneId) === from.lane) return;
    clearCardError(card);
    // Optimistic: the card moves now and snaps back if the API says no.
    moving.add(String(id));
    // Moving a node in the DOM drops its focus; a keyboard user keeps it.
    const hadFocus = document.activeElement === card;
    card.dataset.lane = laneId;
    placeCard(card);
    if (hadFocus) card.focus();
    updateCounts();
    try {
      await api('POST', '/api/items/' + id + '/move', { lane_id: parseInt(laneId, 10) });
      moving.delete(String(id)); deferred.delete(String(id));
      await refreshCard(id);
      const moved = $('#item-' + id);
      if (moved) toast(moved.querySelector('.key').textContent + ' moved to ' + laneOf(laneId).dataset.laneName);
    } catch (e) {
      card.dataset.lane = from.lane;
      from.parent.insertBefore(card, from.next && from.next.parentNode === from.parent ? from.next : null);
      if (hadFocus) card.focus();
      updateCounts();
      cardError(card, e.message);
      moving.delete(String(id));
      settle(id);
    }
  }

  async function cardAction(card, act, button) {
    const id = card.dataset.id;
    clearCardError(card);
    const menu = button.closest('details');
    if (menu) menu.open = false;
    try {
      if (act === 'claim') await api('POST', '/api/items/' + id + '/claim', {});
      else if (act === 'release') await api('POST', '/api/items/' + id + '/release', {});
      else if (act === 'ready') {
        await api('PATCH', '/api/items/' + id, { agent_ready: button.getAttribute('aria-pressed') !== 'true' });
      }
      await refreshCard(id);
    } catch (e) {
      cardError(card, e.message);
    }
  }

  // A card's "More" menu is built when it opens: the same three entries on
  // every card would otherwise be sent once per card (2,000 times on a big
  // board). The card's data attributes say what they must read.
  function fillMenu(card) {
    const menu = $('details.card-menu .menu', card);
    if (!menu || menu.childElementCount) return;
    const key = $('.key', card).textContent;
    const on = card.dataset.ready === 'true';
    const move = document.createElement('button');
    move.type = 'button'; move.dataset.act = 'move';
    move.setAttribute('aria-label', 'Move to lane… (' + key + ')');
    move.textContent = 'Move to lane…';
    const ready = document.createElement('button');
    ready.type = 'button'; ready.dataset.act = 'ready';
    ready.setAttribute('aria-pressed', on ? 'true' : 'false');
    ready.textContent = on ? 'Agent-ready: on (agents may claim it)' : 'Agent-ready: off (agents may not claim it)';
    const open = document.createElement('a');
    open.href = '/items/' + card.dataset.id; open.textContent = 'Open ' + key;
    menu.append(move, ready, open);
  }

  function openMoveMenu(card, button) {
    const old = $('select.move-to', card);
    if (old) { old.focus(); return; }
    const select = document.createElement('select');
    select.className = 'move-to';
    select.setAttribute('aria-label', 'Move ' + $('.key', card).textContent + ' to lane');
    const none = document.createElement('option');
    none.textContent = 'Move to…'; none.value = '';
    select.appendChild(none);
    for (const lane of $$('section.lane', board)) {
      if (lane.dataset.laneId === card.dataset.lane) continue;
      const o = document.createElement('option');
      o.value = lane.dataset.laneId; o.textContent = lane.dataset.laneName;
      select.appendChild(o);
    }
    button.after(select);
    select.focus();
    const close = () => { select.remove(); const d = $('details.card-menu', card); if (d && d.open) d.open = false; };
    select.addEventListener('change', () => { const v = select.value; close(); if (v) moveCard(card, v).then(() => { const c = $('#item-' + card.dataset.id); const b = c && $('[data-act=move]', c); if (b) b.focus(); }); });
    select.addEventListener('keydown', (e) => { if (e.key === 'Escape') { close(); button.focus(); } });
    select.addEventListener('blur', () => setTimeout(close, 150));
  }

  // ---- filters ----
  const filters = $('#filters');
  function applyFilters() {
    if (!filters || !board) return;
    const f = Object.fromEntries(new FormData(filters));
    const q = (f.q || '').trim().toLowerCase();
    const label = (f.label || '').trim().toLowerCase();
    const holder = (f.holder || '').trim().toLowerCase();
    const me = board.dataset.me;
    for (const card of $$('li.card', board)) {
      let show = true;
      if (f.kind && card.dataset.kind !== f.kind) show = false;
      if (show && label && !card.dataset.labels.toLowerCase().split(',').includes(label)) show = false;
      if (show && holder) {
        const h = card.dataset.holder.toLowerCase();
        if (holder === 'none') show = !h;
        else if (holder === 'me') show = card.dataset.holderId === me;
        else show = h.includes(holder);
      }
      if (show && q) show = card.textContent.toLowerCase().includes(q);
      card.hidden = !show;
    }
    rovingStart();
  }

  // ---- keyboard: arrows walk the board, Shift+arrows move the card ----
  function visibleCards(lane) { return $$('li.card', lane).filter((c) => !c.hidden); }
  function lanesWithCards() { return $$('section.lane', board).filter((l) => visibleCards(l).length); }
  function focusCard(card) {
    if (!card) return;
    for (const c of $$('li.card[tabindex="0"]', board)) if (c !== card) c.tabIndex = -1;
    card.tabIndex = 0;
    card.focus();
  }
  function rovingStart() {
    if (!board) return;
    const current = $('li.card[tabindex="0"]', board);
    if (current && !current.hidden) return;
    if (current) current.tabIndex = -1;
    const first = $$('li.card', board).find((c) => !c.hidden);
    if (first) first.tabIndex = 0;
  }
  function onBoardKey(ev) {
    const card = ev.target.closest && ev.target.closest('li.card');
    if (!card || ev.target !== card || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const lane = card.closest('section.lane');
    const cards = visibleCards(lane);
    const i = cards.indexOf(card);
    const lanes = $$('section.lane', board);
    const li = lanes.indexOf(lane);
    const side = (dir) => {
      if (ev.shiftKey) {
        const target = lanes[li + dir];
        if (target) moveCard(card, target.dataset.laneId).then(() => focusCard($('#item-' + card.dataset.id)));
        return;
      }
      const withCards = lanesWithCards();
      const from = withCards.indexOf(lane);
      const next = withCards[from + dir];
      if (next) { const list = visibleCards(next); focusCard(list[Math.min(i, list.length - 1)]); }
    };
    switch (ev.key) {
      case 'ArrowDown': focusCard(cards[i + 1]); break;
      case 'ArrowUp': focusCard(cards[i - 1]); break;
      case 'Home': focusCard(cards[0]); break;
      case 'End': focusCard(cards[cards.length - 1]); break;
      case 'ArrowRight': side(1); break;
      case 'ArrowLeft': side(-1); break;
      case 'Enter': location.href = $('a.title', card).href; break;
      case 'm': { fillMenu(card); const b = $('[data-act=move]', card); if (b) { $('details.card-menu', card).open = true; openMoveMenu(card, b); } break; }
      default: return;
    }
    ev.preventDefault();
  }

  if (board) {
    board.addEventListener('keydown', onBoardKey);
    // A closed menu lets a deferred live refresh through.
    board.addEventListener('toggle', (ev) => {
      const card = ev.target.closest && ev.target.closest('li.card');
      if (card && ev.target.open) fillMenu(card);
      else if (card) settle(card.dataset.id);
    }, true);
    board.addEventListener('focusin', (ev) => { if (ev.target.matches && ev.target.matches('li.card')) focusCard(ev.target); });
    rovingStart();
    if (filters) { filters.addEventListener('input', applyFilters); filters.addEventListener('submit', (e) => e.preventDefault()); }

    board.addEventListener('click', (ev) => {
      const button = ev.target.closest('button[data-act]');
      if (!button) return;
      const card = button.closest('li.card');
      if (button.dataset.act === 'move') openMoveMenu(card, button);
      else cardAction(card, button.dataset.act, button);
    });

    // Drag and drop (pointer); the Move… select is the keyboard route.
    let dragged = null;
    board.addEventListener('dragstart', (ev) => {
      const card = ev.target.closest && ev.target.closest('li.card');
      if (!card) return;
      dragged = card.dataset.id;
      dragging.add(dragged);
      card.classList.add('dragging');
      ev.dataTransfer.effectAllowed = 'move';
      ev.dataTransfer.setData('text/plain', card.dataset.id);
    });
    board.addEventListener('dragend', () => {
      const id = dragged;
      dragged = null;
      $$('.dragging', board).forEach((c) => c.classList.remove('dragging'));
      $$('.drop-target', board).forEach((l) => l.classList.remove('drop-target'));
      if (id) { dragging.delete(id); settle(id); }
    });
    board.addEventListener('dragover', (ev) => {
      const lane = ev.target.closest && ev.target.closest('section.lane');
      if (!lane || !dragged) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = 'move';
      $$('.drop-target', board).forEach((l) => { if (l !== lane) l.classList.remove('drop-target'); });
      lane.classList.add('drop-target');
    });
    board.addEventListener('drop', (ev) => {
      const lane = ev.target.closest && ev.target.closest('section.lane');
      if (!lane) return;
      ev.preventDefault();
      lane.classList.remove('drop-target');
      const card = $('#item-' + (dragged || ev.dataTransfer.getData('text/plain')));
      if (card) { card.classList.remove('dragging'); moveCard(card, lane.dataset.laneId); }
    });

    // ---- live updates: SSE, with a polling fallback ----
    const live = $('#live');
    let lastEvent = parseInt(board.dataset.lastEvent, 10) || 0;
    const pending = new Set();
    let flushTimer = null;
    function queueRefresh(itemId) {
      if (!itemId) return;
      pending.add(itemId);
      if (!flushTimer) flushTimer = setTimeout(async () => {
        flushTimer = null;
        const ids = Array.from(pending); pending.clear();
        for (const id of ids) { try { await refreshCard(id); } catch (_) { /* next event retries */ } }
      }, 150);
    }
    function onEvent(e) {
      if (e.id && e.id <= lastEvent) return;
      if (e.id) lastEvent = e.id;
      queueRefresh(e.item_id);
    }
    let source = null;
    let polling = null;
    async function poll() {
      try {
        const res = await fetch('/boards/' + BOARD_ID + '/changes?after=' + lastEvent, { credentials: 'same-origin' });
        if (res.ok) { const data = await res.json(); data.events.forEach(onEvent); }
      } catch (_) { /* offline: try again */ }
    }
    function startPolling() {
      if (polling) return;
      live.textContent = 'live (polling)';
      live.className = 'live on';
      polling = setInterval(poll, 3000);
      poll();
    }
    function startStream() {
      if (!window.EventSource) { startPolling(); return; }
      source = new EventSource('/api/events/stream?board_id=' + BOARD_ID);
      source.onopen = () => { live.textContent = 'live'; live.className = 'live on'; if (polling) { clearInterval(polling); polling = null; } };
      const handler = (msg) => { try { const e = JSON.parse(msg.data); if (!e.id && msg.lastEventId) e.id = parseInt(msg.lastEventId, 10); onEvent(e); } catch (_) { /* ignore */ } };
      source.onmessage = handler;
      ['item.created', 'item.updated', 'item.agent-ready', 'item.claimed', 'item.released', 'item.claim-expired', 'item.moved', 'item.done', 'comment.created']
        .forEach((t) => source.addEventListener(t, handler));
      // A missing stream (404) or a dropped one: poll until it is back.
      source.onerror = () => { if (source.readyState === EventSource.CLOSED) startPolling(); else startPolling(); };
    }
    startStream();
    updateCounts();
  }

  // ---- dependencies by key (PLAT-8), with search ----
  const itemPage = $('#item-page');
  async function lookup(q) {
    const { data } = await api('GET', '/boards/' + itemPage.dataset.board + '/items/lookup?q=' + encodeURIComponent(q));
    return (data && data.items) || [];
  }
  // Every token must be a key of this board. A bare number is refused: it
  // reads like an internal id, and silently linking one is worse than asking.
  async function resolveKeys(text) {
    const ids = [];
    for (const t of text.split(/[\s,]+/).filter(Boolean)) {
      if (!/^[A-Za-z0-9]+-\d+$/.test(t)) throw new Error('"' + t + '" is not an item key: write it like ' + itemPage.dataset.boardKey + '-8, or pick one from the list');
      const found = (await lookup(t)).find((i) => i.key.toLowerCase() === t.toLowerCase());
      if (!found) throw new Error(t + ' is not an item on this board');
      if (String(found.id) === itemPage.dataset.id) throw new Error(t + ' is this item itself');
      if (!ids.includes(found.id)) ids.push(found.id);
    }
    return ids;
  }
  function suggest(input) {
    const list = document.getElementById(input.getAttribute('list'));
    let timer = null;
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const parts = input.value.split(',');
        const last = parts.pop().trim();
        const before = parts.map((p) => p.trim()).filter(Boolean).join(', ');
        list.textContent = '';
        if (!last) return;
        try {
          for (const i of await lookup(last)) {
            if (String(i.id) === itemPage.dataset.id) continue;
            const o = document.createElement('option');
            // The whole field's value: choosing keeps the keys typed before.
            o.value = (before ? before + ', ' : '') + i.key;
            o.textContent = i.key + ' · ' + i.title + ' (' + i.status + ')';
            list.appendChild(o);
          }
        } catch (_) { /* no suggestions this time */ }
      }, 150);
    });
  }
  if (itemPage) $$('input[data-type="keys"]', itemPage).forEach(suggest);
  const addBlocker = $('#add-blocker');
  if (addBlocker) {
    addBlocker.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const msg = $('.msg', addBlocker);
      try {
        const ids = await resolveKeys([addBlocker.dataset.current, $('#add-blocker-key').value].filter(Boolean).join(', '));
        await api('PATCH', '/api/items/' + itemPage.dataset.id, { blocked_by: ids }, { 'If-Match': '"' + addBlocker.dataset.version + '"' });
        location.reload();
      } catch (e) {
        showMsg(msg, e.status === 412 ? 'Someone changed this item meanwhile; reload the page and add it again.' : e.message, false);
      }
    });
  }

  // ---- the item page: edits with If-Match, conflicts shown side by side ----
  const editForm = $('#edit-form');
  if (editForm) {
    const page = $('#item-page');
    const itemId = page.dataset.id;
    let mine = null;
    let theirs = null;
    const fields = ['title', 'body', 'kind', 'priority', 'agent_ready', 'labels', 'blocked_by'];
    async function save(version, body) {
      const msg = $('.msg', editForm);
      try {
        await api('PATCH', '/api/items/' + itemId, body, { 'If-Match': '"' + version + '"' });
        location.reload();
      } catch (e) {
        if (e.status === 412) {
          mine = body;
          theirs = (await api('GET', '/api/items/' + itemId)).data;
          const box = $('#conflict');
          const tbody = $('tbody', box);
          tbody.textContent = '';
          for (const f of fields) {
            if (!(f in mine)) continue;
            const a = JSON.stringify(mine[f]); const b = JSON.stringify(theirs[f]);
            const tr = document.createElement('tr');
            if (a !== b) tr.className = 'differs';
            for (const text of [f, a, b]) { const td = document.createElement('td'); td.textContent = text; tr.appendChild(td); }
            tbody.appendChild(tr);
          }
          $('[data-theirs-version]', box).textContent = theirs.version;
          box.hidden = false;
          showMsg(msg, e.message, false);
          $('[data-conflict=mine]', box).focus();
        } else {
          showMsg(msg, e.message, false);
        }
      }
    }
    editForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = formBody(editForm);
      if (!('labels' in body)) body.labels = [];
      try {
        body.blocked_by = await resolveKeys($('#f-deps').value);
      } catch (e) { showMsg($('.msg', editForm), e.message, false); return; }
      save(editForm.dataset.version, body);
    });
    $('#conflict').addEventListener('click', (ev) => {
      const choice = ev.target.closest('[data-conflict]');
      if (!choice) return;
      if (choice.dataset.conflict === 'mine') save(theirs.version, mine);
      else location.reload();
    });
  }

  // ---- webhooks page (the API may not exist yet: 404 is shown, not fatal) ----
  const hooks = $('#webhooks');
  if (hooks) {
    const status = $('#webhooks-status');
    const table = $('table.webhook-table', hooks);
    const deliveries = $('#deliveries');
    function cell(tr, text, label) { const td = document.createElement('td'); td.textContent = text; if (label) td.dataset.label = label; tr.appendChild(td); return td; }
    let health = {};
    try { health = JSON.parse(hooks.dataset.health || '{}'); } catch (_) { health = {}; }
    const when = (ms) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
    // Disabled, failing (since when, last success, last error) or healthy.
    function healthCell(tr, hook) {
      const h = health[hook.id] || {};
      const td = cell(tr, '', 'Health');
      const badge = document.createElement('span');
      const detail = document.createElement('span');
      detail.className = 'health-detail';
      const last = h.last_success_ms ? 'last success ' + when(h.last_success_ms) : 'no success yet';
      if (hook.enabled === false) {
        badge.className = 'health bad'; badge.textContent = 'disabled';
        detail.textContent = (hook.disabled_reason || 'by an admin') + ' · ' + last;
      } else if (hook.failing_since) {
        badge.className = 'health warn'; badge.textContent = 'failing';
        detail.textContent = 'since ' + when(Date.parse(hook.failing_since)) + ' · ' + last + (h.last_error ? ' · ' + h.last_error : '');
      } else if (h.last_success_ms) {
        badge.className = 'health ok'; badge.textContent = 'healthy';
        detail.textContent = last;
      } else {
        badge.className = 'health'; badge.textContent = 'no deliveries yet';
      }
      td.append(badge, ' ', detail);
    }
    function button(label, fn, cls) { const b = document.createElement('button'); b.type = 'button'; b.textContent = label; if (cls) b.className = cls; b.addEventListener('click', fn); return b; }
    async function showDeliveries(hook) {
      const tbody = $('tbody', deliveries);
      tbody.textContent = '';
      deliveries.hidden = false;
      try {
        const { data } = await api('GET', '/api/webhooks/' + hook.id + '/deliveries');
        const list = (data && (data.deliveries || data.items)) || [];
        for (const d of list) {
          const tr = document.createElement('tr');
          cell(tr, d.created_at || d.at || '', 'When'); cell(tr, d.event_type || d.type || '', 'Event');
          cell(tr, d.status || (d.response_status ? 'HTTP ' + d.response_status : '') || '', 'Status');
          cell(tr, String(d.attempts || d.attempt || ''), 'Attempts');
          cell(tr, '').appendChild(button('Retry', async () => {
            try { await api('POST', '/api/webhooks/' + hook.id + '/deliveries/' + d.id + '/retry'); toast('Retry queued'); showDeliveries(hook); } catch (e) { toast(e.message); }
          }));
          tbody.appendChild(tr);
        }
        if (!list.length) { const tr = document.createElement('tr'); cell(tr, 'No deliveries yet.').colSpan = 5; tbody.appendChild(tr); }
      } catch (e) { const tr = document.createElement('tr'); cell(tr, e.message).colSpan = 5; tbody.appendChild(tr); }
    }
    window.loadWebhooks = async function () {
      try {
        const { data } = await api('GET', '/api/boards/' + hooks.dataset.board + '/webhooks');
        const list = (data && (data.webhooks || data.items)) || [];
        const tbody = $('tbody', table);
        tbody.textContent = '';
        for (const hook of list) {
          const tr = document.createElement('tr');
          cell(tr, hook.url, 'URL');
          healthCell(tr, hook);
          cell(tr, (hook.events || []).join(', ') || 'all', 'Events');
          const actions = cell(tr, '');
          actions.appendChild(button('Deliveries', () => showDeliveries(hook)));
          actions.appendChild(button('Remove', async () => {
            if (!confirm('Remove webhook ' + hook.url + '?')) return;
            try { await api('DELETE', '/api/webhooks/' + hook.id); window.loadWebhooks(); } catch (e) { toast(e.message); }
          }, 'danger'));
          tbody.appendChild(tr);
        }
        table.hidden = !list.length;
        status.textContent = list.length ? '' : 'No webhooks yet.';
      } catch (e) {
        status.textContent = e.status === 404 ? 'Webhooks are not available on this server yet.' : e.message;
      }
    };
    window.loadWebhooks();
  }
})();

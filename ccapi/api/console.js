"use strict";
// The CC API console: plain DOM, same-origin fetch, no dependencies. Text from the API is only ever set through
// textContent (replies go through Markdown.render, which builds nodes the same way). The key lives in
// sessionStorage and travels as a header, never in a URL.
const $ = (selector) => document.querySelector(selector);
const KEY_SLOT = "cc-api-key";
const MAX_LOG_ROWS = 500;
const LIST_POLL_MS = 5000;
const LIST_PAGE = 20;
const RESULT_CLIP = 4000;
const ENDS = ["turn.completed", "turn.failed", "turn.interrupted"];
const LABELS = { requires_approval: "waiting for approval", requires_action: "waiting for tool result" };
const HEADER_SAFE = /^[^\0-\x1f\x7f\u0100-\uffff]+$/;  // what a header value can carry (Latin-1, no control)
const BUSY = ["running", "requires_action", "requires_approval"];  // what Interrupt can stop
const state = {
  key: sessionStorage.getItem(KEY_SLOT) || "", nextAfter: null, view: null, started: false,
  listed: 0, loads: 0, drawn: 0,  // sessions the list holds; list reads started, and the latest drawn
  titles: new Map(),   // session id → its first user message (a session's first input never changes)
  outcomes: new Map(), // "id:last_event_seq" → how its last turn ended
};

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function button(label, className, onClick) {
  const made = element("button", className, label);
  made.type = "button";
  made.addEventListener("click", onClick);
  return made;
}

function headers(extra) {
  const all = { Accept: "application/json", ...extra };
  if (state.key) all.Authorization = "Bearer " + state.key;
  return all;
}

async function api(path, method = "GET", body = undefined) {
  const init = { method, headers: headers(), cache: "no-store" };
  if (method !== "GET") {  // every write carries a JSON body, as the gateway expects
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body === undefined ? {} : body);
  }
  const response = await fetch(path, init).catch(() => {
    throw new ApiError(0, "The gateway did not answer: is it running? (it may be restarting)");
  });
  const payload = await response.json().catch(() => null);
  if (response.status === 401) refused(init.headers);
  if (!response.ok) throw new ApiError(response.status, payload?.error?.message || `HTTP ${response.status}`);
  return payload;
}

const sessionPath = (id, rest = "") => "/api/sessions/" + encodeURIComponent(id) + rest;

function when(iso, timeOnly = false) {
  const date = new Date(iso);
  if (isNaN(date)) return "";
  return timeOnly ? date.toLocaleTimeString() : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

// "11:20 AM" today, the date before that.
function lately(iso) {
  const date = new Date(iso);
  if (isNaN(date)) return "";
  const today = date.toDateString() === new Date().toDateString();
  return date.toLocaleString([], today ? { timeStyle: "short" } : { dateStyle: "short" });
}

const plural = (count, noun) => `${count} ${noun}${count === 1 ? "" : "s"}`;
const clip = (text, length) => text.length > length ? text.slice(0, length) + "…" : text;
const seconds = (ms) => ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
const label = (status) => LABELS[status] || String(status).replace("_", " ");

// A badge's class is "badge <status>", after any role class it was made with (kept in data-role).
function setBadge(badge, status) {
  badge.className = (badge.dataset.role ? badge.dataset.role + " " : "") + "badge " + status;
  badge.textContent = label(status);
}

function inputText(blocks) {
  if (typeof blocks === "string") return blocks;
  return (blocks || []).map((block) => block.type === "text" ? block.text : `[${block.type}]`).join("\n");
}

function resultText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((b) => b.type === "text" ? b.text : `[${b.type}]`).join("\n");
  return JSON.stringify(content, null, 2);
}

// -- key ------------------------------------------------------------------------------------------
function askForKey(message) {
  state.key = "";
  sessionStorage.removeItem(KEY_SLOT);
  stopFollowing();
  $("#app").hidden = true;
  $("#forget-key").hidden = true;
  $("#docs-link").hidden = true;
  $("#key-panel").hidden = false;
  $("#key-error").textContent = message || "";
  $("#key-input").focus();
}

// A 401 to a request sent with these headers: no key was given yet, or that one is wrong (the gateway may have
// restarted with another). Said the same by every request that was refused, whichever answers last.
const refused = (sent) => askForKey(sent.Authorization ? "That key was refused." : "");

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("#key-input").value.trim();
  if (!HEADER_SAFE.test(key)) {  // fetch would refuse to send it, and the page would say the gateway is down
    $("#key-error").textContent = "That is not a key this page can send: it has a line break or a character " +
      "outside Latin-1 (check what was pasted).";
    return;
  }
  state.key = key;
  $("#key-input").value = "";
  sessionStorage.setItem(KEY_SLOT, state.key);
  start();
  showHealth(); // now with the key: its details
});
$("#forget-key").addEventListener("click", () => askForKey(""));

// -- the gateway: versions, health, limits --------------------------------------------------------
async function showVersions() {
  const info = await (await fetch("/", { headers: { Accept: "application/json" }, cache: "no-store" })).json();
  $("#versions").textContent = `cc-api ${info.version} · SDK ${info.sdk_version} · Claude Code ${info.cli_version}`;
  $("#mock-banner").hidden = !info.mock_model;
  document.title = info.mock_model ? "CC API (mock model)" : "CC API";
}

function fact(list, name, value, className = "") {
  list.append(element("dt", "", name), element("dd", className, value));
}

async function showHealth() {
  const badge = $("#health");
  let health;
  try {
    // with the key (when there is one): /healthz keeps permissions and credentials for callers that hold it
    const response = await fetch("/healthz", { headers: headers(), cache: "no-store" });
    health = await response.json();
  } catch (error) {
    setBadge(badge, "unreachable");
    return;
  }
  const good = health.status === "ok" && !health.limits?.rate_limited;
  badge.className = "badge " + (good ? "ok" : "bad");
  badge.textContent = health.limits?.rate_limited ? "rate limited" : health.status;
  badge.title = health.claude_credentials?.message || "";
  const facts = $("#health-facts");
  facts.replaceChildren();
  fact(facts, "status", `${health.status} (database ${health.database})`, health.status === "ok" ? "" : "error-text");
  fact(facts, "engines", `${health.live_engines} of ${health.max_live} live · ${health.queued_turns} queued`);
  if (!health.permissions) return; // details need the key, which the page does not have yet
  fact(facts, "permissions", `${health.permissions.default_mode} · approvals ${health.permissions.approvals}`);
  fact(facts, "credentials", health.claude_credentials?.message || (health.claude_credentials?.found ? "found" : "none"));
  if (state.started && !$("#app").hidden) showLimits();
}

async function showLimits() {
  const limits = await api("/api/limits").catch(() => null);
  const box = $("#limits");
  box.replaceChildren();
  if (!limits) return;
  box.append(element("p", "muted small", limits.note));
  for (const usage of limits.windows) {
    const row = element("div", "window" + (usage.blocking ? " blocking" : ""));
    const meter = element("meter");
    meter.min = 0; meter.max = 1; meter.low = 0.75; meter.high = 0.9; meter.optimum = 0;
    meter.value = usage.utilization ?? 0;
    row.append(element("div", "small", usage.summary), meter);
    box.append(row);
  }
}

// -- sessions -------------------------------------------------------------------------------------
// The list is read again as far as it reaches (its first page, or as far as "More" took it), so every session it
// shows keeps a current status and one deleted elsewhere leaves it; "More" adds the next page at its end.
async function loadSessions(more = false) {
  const list = $("#sessions"), after = more ? state.nextAfter : null, load = ++state.loads;
  const reach = Math.max(LIST_PAGE, state.listed);
  try {
    const page = after
      ? await api(`/api/sessions?limit=${LIST_PAGE}&after=` + encodeURIComponent(after))
      : await listSessions(reach);
    if (!after) loadWaiting(load);
    if (after ? state.nextAfter !== after : load < state.drawn) return;  // the list moved on while this was read
    if (!after && state.listed > reach) return loadSessions();  // "More" took it further meanwhile: read that far
    state.drawn = load;
    const items = page.data.map(sessionItem);
    if (after) list.append(...items);
    else list.replaceChildren(...items);
    state.listed = list.children.length;
    state.nextAfter = page.next_after;
    $("#more-sessions").hidden = !page.has_more;
    $("#sessions-error").textContent = list.children.length ? "" : "No sessions yet.";
    await Promise.all(page.data.map((session, n) => describe(session, items[n])));
  } catch (error) {
    if (error.status !== 401) $("#sessions-error").textContent = error.message;
  }
}

// The sessions that wait for an approval or a tool result, above the list: an old one is pages down in it.
async function loadWaiting(load) {
  const page = await api(`/api/sessions?status=requires_approval,requires_action&limit=${LIST_PAGE}`).catch(() => null);
  if (!page || load < state.drawn) return;
  const items = page.data.map(sessionItem);
  $("#waiting").replaceChildren(...items);
  $("#waiting-box").hidden = !items.length;
  await Promise.all(page.data.map((session, n) => describe(session, items[n])));
}

// The newest `count` sessions, read in pages of up to 100 (the most one request may ask for).
async function listSessions(count) {
  const data = [];
  let page = null;
  do {
    const after = page ? "&after=" + encodeURIComponent(page.next_after) : "";
    page = await api(`/api/sessions?limit=${Math.min(100, count - data.length)}${after}`);
    data.push(...page.data);
  } while (page.has_more && data.length < count);
  return { data, has_more: page.has_more, next_after: page.next_after };
}

function sessionItem(session) {
  const item = element("li");
  item.dataset.id = session.id;
  item.classList.toggle("selected", session.id === state.view?.id);
  const first = element("div", "title", titleOf(session));
  const second = element("div", "line2");
  second.append(element("span", "badge " + session.status, label(session.status)),
                element("span", "about", `${session.model.replace(/^claude-/, "")} · ${plural(session.turn_count, "turn")}`),
                element("span", "", lately(session.updated_at)));
  item.append(first, second);
  item.addEventListener("click", () => { location.hash = "#/sessions/" + encodeURIComponent(session.id); });
  return item;
}

function titleOf(session) {
  const named = session.metadata?.title || session.metadata?.name;
  if (typeof named === "string" && named.trim()) return named.trim();
  return state.titles.get(session.id) || session.id;
}

// Names a listed session by its first user message and tells a failed last turn from a finished one: both come
// from the event log, read once and then kept.
async function describe(session, item) {
  const title = item.querySelector(".title");
  title.title = session.id;
  if (title.textContent === session.id && session.turn_count && !state.titles.has(session.id)) {
    const first = await api(sessionPath(session.id, "/events?types=turn.started&limit=1")).catch(() => null);
    const started = first?.data?.[0];
    const text = inputText(started?.data?.input).trim().split("\n")[0];
    if (started) state.titles.set(session.id, clip(text, 80));  // "" (no text to go by) is kept too: the id stays
    title.textContent = titleOf(session);
  }
  title.classList.toggle("mono", title.textContent === session.id);
  if (session.status !== "idle" || !session.turn_count) return;
  const key = `${session.id}:${session.last_event_seq}`;
  if (!state.outcomes.has(key)) {
    const after = Math.max(0, session.last_event_seq - 8);
    const ends = await api(sessionPath(session.id, `/events?after=${after}&limit=8&types=${ENDS.join(",")}`))
      .catch(() => null);
    state.outcomes.set(key, ends?.data?.at(-1)?.type?.replace("turn.", "") || "idle");
  }
  const outcome = state.outcomes.get(key);
  if (outcome === "failed" || outcome === "interrupted") setBadge(item.querySelector(".badge"), outcome);
}

function markListed(id, status) {
  const badge = document.querySelector(`#sessions li[data-id="${CSS.escape(id)}"] .badge`);
  if (badge) setBadge(badge, status);
}

async function loadModels() {
  const models = await api("/api/models").catch(() => ({ data: [] }));
  const select = $("#model");
  select.replaceChildren(element("option", "", "default model"));
  select.firstChild.value = "";
  for (const model of models.data) {
    const option = element("option", "", model.display_name || model.id);
    option.value = model.id;
    select.append(option);
  }
}

$("#new-session").addEventListener("click", async () => {
  const model = $("#model").value, view = state.view;
  try {
    const session = await api("/api/sessions", "POST", model ? { model } : {});
    await loadSessions();
    // open it, unless another session was opened meanwhile
    if (state.view === view) location.hash = "#/sessions/" + encodeURIComponent(session.id);
  } catch (error) {
    $("#sessions-error").textContent = error.message;
  }
});
$("#more-sessions").addEventListener("click", () => loadSessions(true));
$("#refresh-sessions").addEventListener("click", () => loadSessions());

// -- one session: its turns and its live event log ------------------------------------------------
function stopFollowing() {
  if (state.view) state.view.abort.abort();
  state.view = null;
}

async function openSession(id) {
  stopFollowing();
  for (const item of document.querySelectorAll(".sessions li")) item.classList.toggle("selected", item.dataset.id === id);
  $("#no-session").hidden = Boolean(id);
  $("#session-view").hidden = !id;
  if (!id) return;
  const view = { id, abort: new AbortController(), lastSeq: 0, turns: new Map(), tools: new Map(), status: "idle",
                 asking: new Set() };  // the permission requests still waiting for an answer
  state.view = view;
  $("#session-title").textContent = id;
  $("#session-id").textContent = id;
  $("#turns").replaceChildren();
  $("#events tbody").replaceChildren();
  eventLog.top = 0;
  $("#webhooks").hidden = true;
  $("#send-error").textContent = "";
  $("#delete-session").textContent = "Delete";
  setWritable(true);
  try {
    showSession(view, await api(sessionPath(id)));
  } catch (error) {
    if (state.view === view) $("#session-meta").textContent = error.message;
    if (error.status === 404) gone(view);
    return;
  }
  follow(view);
}

function showSession(view, session) {
  if (state.view !== view) return;
  view.session = session;
  setStatus(view, session.status);
  $("#session-title").textContent = titleOf(session);
  const usage = session.usage || {};
  const context = session.context?.percentage;
  $("#session-meta").textContent = [session.model, `created ${when(session.created_at)}`,
    plural(session.turn_count, "turn"), `${usage.input_tokens ?? 0} in / ${usage.output_tokens ?? 0} out tokens`,
    context !== undefined && context !== null ? `context ${context}%` : null,
    session.permission_mode ? `permissions ${session.permission_mode}` : null].filter(Boolean).join(" · ");
  if (session.webhook) showWebhooks(view);
}

// Newest first: someone watching wants the latest deliveries, not a session's first hundred.
async function showWebhooks(view) {
  const page = await api(sessionPath(view.id, "/webhooks?order=desc&limit=100")).catch(() => null);
  if (!page || state.view !== view) return;
  const body = $("#webhooks tbody");
  body.replaceChildren();
  for (const delivery of page.data) {
    const row = element("tr"), badge = element("td");
    badge.append(element("span", "badge " + delivery.state, delivery.state));
    const outcome = delivery.last_error || (delivery.last_status ? `HTTP ${delivery.last_status}` : "");
    row.append(element("td", "mono", delivery.event_seq), element("td", "mono", delivery.event_type), badge,
               element("td", "", plural(delivery.attempts, "attempt")), element("td", "muted", outcome),
               element("td", "muted", when(delivery.last_attempt_at || delivery.created_at, true)));
    body.append(row);
  }
  const count = page.has_more ? `latest ${page.data.length}` : page.data.length;
  $("#webhooks summary").textContent = `Webhook deliveries (${count}) → ${view.session.webhook.url}`;
  $("#webhooks").hidden = false;
}

// Once the events of a burst (a replayed history, say) are in, not once per finished turn.
function refreshSoon(view) {
  clearTimeout(view.refreshTimer);
  view.refreshTimer = setTimeout(() => refresh(view), 250);
}

async function refresh(view) {
  const session = await api(sessionPath(view.id)).catch(() => null);
  if (session) showSession(view, session);
  loadSessions();
}

function setStatus(view, status) {
  if (state.view !== view) return;
  view.status = status;
  setBadge($("#session-status"), status);
  $("#interrupt").disabled = !BUSY.includes(status);
  markListed(view.id, status);
}

function setLink(view, status) {
  if (state.view !== view) return;
  const badge = $("#link");
  badge.className = "badge " + status;
  badge.textContent = status;
}

// Deleted (here, by another client, or before the page was opened): nothing is left to send to or stop.
function gone(view) {
  if (state.view !== view) return;
  setLink(view, "deleted");
  setStatus(view, "deleted");
  $("#send-error").textContent = "This session has been deleted.";
  setWritable(false);
  for (const fork of document.querySelectorAll("#turns .fork")) fork.hidden = true;
  for (const control of document.querySelectorAll("#turns .approval button, #turns .approval input")) {
    control.disabled = true;
  }
}

// The controls that act on the open session.
function setWritable(on) {
  for (const control of document.querySelectorAll("#send button, #send textarea, #delete-session")) control.disabled = !on;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Follows /events/stream with fetch (EventSource cannot send the key header); after a dropped
// connection it reconnects with Last-Event-ID, so every event is shown once, in order. A tab out of sight lets its
// stream go and picks it up from there once shown again: a browser opens six connections to a gateway at most, and a
// seventh console tab's stream, or any request of any of them (an approval, Send, Interrupt), waited for one.
async function follow(view) {
  let delay = 500;
  while (!view.abort.signal.aborted) {
    if (document.hidden) {
      setLink(view, "paused");
      await shown(view.abort.signal);
      continue;
    }
    const connection = new AbortController(), hidden = { now: false };
    const hide = () => {
      if (!document.hidden) return;
      hidden.now = true;
      connection.abort();
    };
    const leave = () => connection.abort();
    document.addEventListener("visibilitychange", hide);
    view.abort.signal.addEventListener("abort", leave);
    try {
      const extra = { Accept: "text/event-stream" };
      if (view.lastSeq) extra["Last-Event-ID"] = String(view.lastSeq);
      const sent = headers(extra);
      const response = await fetch(sessionPath(view.id, "/events/stream"),
                                   { headers: sent, cache: "no-store", signal: connection.signal });
      if (response.status === 401) return refused(sent);
      if (response.status === 404) return gone(view);
      if (!response.ok) throw new ApiError(response.status, `HTTP ${response.status}`);
      setLink(view, "live");
      delay = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = frame.split("\n").filter((line) => line.startsWith("data:"))
                            .map((line) => line.slice(5).replace(/^ /, "")).join("\n");
          if (data) apply(view, JSON.parse(data));
        }
      }
    } catch (error) {
      if (view.abort.signal.aborted) return;
    } finally {
      document.removeEventListener("visibilitychange", hide);
      view.abort.signal.removeEventListener("abort", leave);
    }
    if (hidden.now) continue;  // paused at the top of the loop
    setLink(view, "reconnecting");
    await sleep(delay);
    delay = Math.min(delay * 2, 8000);
  }
}

// Resolves once the page is in sight again, or the session is left.
function shown(signal) {
  return new Promise((resolve) => {
    const check = () => {
      if (document.hidden && !signal.aborted) return;
      document.removeEventListener("visibilitychange", check);
      signal.removeEventListener("abort", check);
      resolve();
    };
    document.addEventListener("visibilitychange", check);
    signal.addEventListener("abort", check);
  });
}

// -- a turn: its input, replies, thinking and tool calls in the order they came ---------------------
function turnCard(view, event) {
  let card = view.turns.get(event.turn_id);
  if (!card) {
    const root = element("article", "turn");
    root.dataset.turn = event.turn_id;
    const head = element("div", "head");
    const number = element("span", "number", "turn");
    const status = element("span", "status badge running", "running");
    status.dataset.role = "status";
    const timing = element("span", "timing muted");
    const fork = button("Fork from here", "small", () => forkFrom(view, event.turn_id));
    fork.className = "fork small";
    fork.hidden = true;
    const withdraw = button("Withdraw", "small", () => withdrawTurn(view, event.turn_id, withdraw));
    withdraw.className = "withdraw small";
    withdraw.hidden = true;
    head.append(number, status, timing, element("span", "spacer"), withdraw, fork);
    card = { root, number, status, timing, fork, withdraw, input: element("div", "input"),
             body: element("div", "body"), notes: element("div", "note"), text: null, thinking: null,
             live: [] };  // live: what the unfinished message streamed
    card.input.hidden = true;
    root.append(head, card.input, card.body, card.notes);
    view.turns.set(event.turn_id, card);
    $("#turns").append(root);
  }
  return card;
}

function settle(card, status, note, isError = false) {
  setBadge(card.status, status);
  if (note) card.notes.append(element("div", isError ? "error" : "", note));
}

// Replies render as Markdown; while deltas stream in, at most every 60 ms.
function appendText(card, text) {
  if (!card.text) {
    card.text = { node: element("div", "reply markdown"), source: "", timer: null };
    card.body.append(card.text.node);
    card.live.push(card.text.node);
  }
  const block = card.text;
  block.source += text;
  if (!block.timer) block.timer = setTimeout(() => renderText(block), 60);
}

function renderText(block) {
  clearTimeout(block.timer);
  block.timer = null;
  block.node.replaceChildren(Markdown.render(block.source));
}

// An upstream retry streams the message again from its start: what its first try streamed goes.
function dropUnfinished(card) {
  if (card.text) clearTimeout(card.text.timer);
  if (card.thinking) clearTimeout(card.thinking.timer);
  card.thinking = null;
  for (const node of card.live) node.remove();
  card.live = [];
  card.text = null;
}

// Thinking, too, is shown at most every 60 ms: setting the whole text again for every delta took time quadratic in
// its length (a long thinking block of thousands of deltas held the page for seconds as a session opened).
function appendThinking(card, text) {
  let box = card.body.lastElementChild;
  if (!box || !box.classList.contains("thinking")) {
    box = element("details", "thinking");
    box.append(element("summary", "", "Thinking"), element("div", "text"));
    card.body.append(box);
    card.live.push(box);
    card.text = null;
  }
  if (card.thinking?.box !== box) {  // a new box, or one an earlier message of this turn left last
    const node = box.querySelector(".text");
    card.thinking = { box, node, source: node.textContent, timer: null };
  }
  const block = card.thinking;
  block.source += text ?? "";
  if (!block.timer) block.timer = setTimeout(() => showThinking(block), 60);
}

function showThinking(block) {
  clearTimeout(block.timer);
  block.timer = null;
  block.node.textContent = block.source;
}

function toolCard(view, card, id, name, input, created, client) {
  let tool = view.tools.get(id);
  if (tool) return tool;
  const root = element("div", "tool" + (client ? " client" : ""));
  root.dataset.tool = id;
  const head = element("div", "tool-head");
  const state_ = element("span", "badge running", "running");
  const took = element("span", "muted took");
  head.append(element("span", "mono tool-name", name), client ? element("span", "muted", "client tool") : "",
              state_, element("span", "spacer"), took);
  const shown = element("div", "tool-input");
  if (typeof input?.command === "string") {
    const { command, description, ...rest } = input;
    shown.append(element("pre", "command", command));
    if (description) shown.append(element("div", "muted small", description));
    // the rest of what is asked (a timeout, run_in_background, dangerouslyDisableSandbox) is shown too: an approval
    // is of the whole call, not of its command alone
    if (Object.keys(rest).length) shown.append(element("pre", "options", JSON.stringify(rest, null, 2)));
  } else if (typeof input?.file_path === "string" && Object.keys(input).length === 1) {
    shown.append(element("pre", "command", input.file_path));
  } else {
    shown.append(element("pre", "", JSON.stringify(input ?? {}, null, 2)));
  }
  const approval = element("div", "approval");
  approval.hidden = true;
  const result = element("div", "tool-result");
  root.append(head, shown, approval, result);
  tool = { root, state: state_, took, approval, result, started: created };
  view.tools.set(id, tool);
  card.body.append(root);
  card.text = null;
  return tool;
}

function finishTool(tool, content, isError, at, note) {
  setBadge(tool.state, isError ? "error" : "done");
  if (tool.started && at) tool.took.textContent = seconds(new Date(at) - new Date(tool.started));
  const text = resultText(content);
  tool.result.replaceChildren();
  if (note) tool.result.append(element("div", "muted small", note));
  if (!text) return;
  if (text.length > 600) {
    const more = element("details");
    more.append(element("summary", "", `result · ${plural(text.split("\n").length, "line")}`),
                element("pre", isError ? "error" : "", clip(text, RESULT_CLIP)));
    tool.result.append(more);
  } else {
    tool.result.append(element("pre", isError ? "error" : "", text));
  }
}

function askApproval(view, tool, request) {
  tool.request = request.request_id;
  setBadge(tool.state, "requires_approval");
  const reason = element("input", "reason");
  reason.placeholder = "reason, if you deny (Claude reads it)";
  reason.setAttribute("aria-label", "reason for denying");
  const error = element("span", "error-text small");
  const decide = async (behavior, forSession = false) => {
    for (const control of tool.approval.querySelectorAll("button, input")) control.disabled = true;
    error.textContent = "";
    const decision = { request_id: request.request_id, behavior };
    if (forSession) decision.scope = "session";
    if (behavior === "deny" && reason.value.trim()) decision.message = reason.value.trim();
    try {
      // background: answered at once, not when the turn settles (the page follows the event stream anyway)
      await api(sessionPath(view.id, "/permissions"), "POST", { decisions: [decision], background: true });
    } catch (failure) {
      if (failure.status !== 409) {  // a 409 means it was decided already (elsewhere, or it timed out)
        error.textContent = failure.message;
        for (const control of tool.approval.querySelectorAll("button, input")) control.disabled = false;
      }
    }
  };
  const allow = button("Allow", "primary allow", () => decide("allow"));
  const always = button(`Allow ${request.tool_name} for this session`, "allow-session", () => decide("allow", true));
  always.title = "Claude Code stops asking for this tool while the session's process lives (it asks again after " +
    "the gateway releases it, when idle or on a restart)";
  const deny = button("Deny", "deny", () => decide("deny"));
  const row = element("div", "row");
  row.append(element("strong", "", `Claude Code asks to run ${request.tool_name}.`), allow, always, deny, reason);
  tool.approval.replaceChildren(row, error);
  tool.approval.hidden = false;
  tool.approval.scrollIntoView({ block: "nearest" });
}

function resolveApproval(tool, data) {
  tool.approval.hidden = false;
  const verdict = data.timed_out ? "denied: no answer in time" : data.behavior === "deny" ? "denied" :
    data.scope === "session" ? `allowed, and for the rest of this session` : "allowed";
  tool.approval.replaceChildren(element("div", "resolved " + data.behavior,
    verdict + (data.message && !data.timed_out ? ` (“${data.message}”)` : "")));
  setBadge(tool.state, data.behavior === "allow" ? "running" : "denied");
}

function apply(view, event) {
  if (state.view !== view || event.seq <= view.lastSeq) return;  // a replay overlap is shown once
  view.lastSeq = event.seq;
  logRow(event);
  const data = event.data || {};
  if (event.type === "session.created") showOrigin(data);
  if (event.type === "session.updated") refreshSoon(view);  // its model, permissions or webhook changed
  if (!event.turn_id) return;
  const card = turnCard(view, event);
  switch (event.type) {
    case "turn.queued":  // waits behind the running turn: the session's status is that turn's
      card.number.textContent = `Queued (#${data.position})`;
      card.input.textContent = inputText(data.input);
      card.input.hidden = !card.input.textContent;
      settle(card, "queued");
      card.withdraw.hidden = false;  // until it starts: it has not reached the model
      break;
    case "turn.started":
      card.number.textContent = `Turn ${data.number}` + (data.kind && data.kind !== "input" ? ` (${data.kind})` : "");
      card.input.textContent = inputText(data.input);
      card.input.hidden = !card.input.textContent;
      settle(card, "running");  // a queued turn's card, now that it starts
      card.withdraw.hidden = true;
      setStatus(view, "running");
      break;
    case "message.delta": appendText(card, data.text); break;
    case "thinking.delta": appendThinking(card, data.thinking); break;
    case "message.completed": {
      const text = (data.content || []).filter((b) => b.type === "text").map((b) => b.text).join("");
      if (!data.parent_tool_use_id && text) {
        if (card.text) card.text.source = text;  // the whole message is what counts, whatever its deltas said
        else appendText(card, text);
      }
      if (card.text) renderText(card.text);  // the message is whole: show it as it ends, not a moment later
      if (card.thinking) showThinking(card.thinking);
      card.thinking = null;
      for (const node of card.live) node.dataset.message = data.message_id || "";  // see turn.retrying
      card.text = null;
      card.live = [];
      break;
    }
    case "agent_tool.started": toolCard(view, card, data.tool_use_id, data.name, data.input, event.created_at); break;
    case "agent_tool.completed": {
      const tool = view.tools.get(data.tool_use_id);
      if (tool) finishTool(tool, data.content, data.is_error, event.created_at);
      break;
    }
    case "tool_call": toolCard(view, card, data.tool_call_id, data.name, data.input, event.created_at, true); break;
    case "tool_result": {
      const tool = view.tools.get(data.tool_call_id);
      if (tool) finishTool(tool, data.content, data.is_error, event.created_at, data.timed_out ? "timed out" : "");
      settle(card, "running");
      setStatus(view, "running");
      break;
    }
    case "permission.requested": {
      const id = data.tool_use_id || data.request_id;
      const tool = toolCard(view, card, id, data.tool_name, data.input, event.created_at);
      view.tools.set(data.request_id, tool);
      view.asking.add(data.request_id);
      askApproval(view, tool, data);
      break;
    }
    case "permission.resolved": {
      const tool = view.tools.get(data.request_id);
      if (tool) resolveApproval(tool, data);
      view.asking.delete(data.request_id);
      const still = view.asking.size ? "requires_approval" : "running";  // another call may still wait
      setStatus(view, still);
      settle(card, still);
      break;
    }
    case "turn.retrying":
      dropUnfinished(card);
      // a message cut off after some of its blocks had finished: Claude Code asks for all of it again
      for (const node of card.body.querySelectorAll("[data-message]")) {
        if (node.dataset.message === data.discarded_message_id) node.remove();
      }
      settle(card, "retrying", data.attempt ? `retrying (attempt ${data.attempt})` : "retrying");
      break;
    case "turn.requires_action":
      settle(card, "requires_action");
      setStatus(view, "requires_action");
      for (const call of data.tool_calls || []) {
        const tool = view.tools.get(call.tool_call_id);
        if (tool && !tool.result.textContent) tool.result.replaceChildren(element("div", "muted small",
          "waiting for the client's result (POST /tool-results)"));
      }
      break;
    case "turn.requires_approval": settle(card, "requires_approval"); setStatus(view, "requires_approval"); break;
    case "turn.completed":
    case "turn.interrupted":
    case "turn.failed": {
      const status = event.type.slice(5);
      const facts = [data.duration_ms != null ? seconds(data.duration_ms) : null,
                     data.usage ? `${data.usage.input_tokens ?? 0} in / ${data.usage.output_tokens ?? 0} out` : null,
                     data.cost_usd != null ? `$${data.cost_usd.toFixed(4)}` : null];
      card.timing.textContent = facts.filter(Boolean).join(" · ");
      settle(card, status, status === "completed" ? "" : data.error?.message || status, status === "failed");
      for (const tool of card.body.querySelectorAll(".tool .approval:not([hidden]) button")) tool.disabled = true;
      card.fork.hidden = status !== "completed";
      card.withdraw.hidden = true;
      if (!data.queued) {  // a withdrawn queued turn: the running one goes on
        setStatus(view, status === "completed" ? "idle" : status);
        view.asking.clear();
      }
      refreshSoon(view);
      break;
    }
  }
}

// A fork, or a session started from a compat client's history, holds a conversation its own log does not show:
// said above its turns, with a link to the session it was forked from.
function showOrigin(data) {
  const from = data.forked_from, note = element("p", "origin muted small");
  if (typeof from?.session_id === "string") {
    const listed = document.querySelector(`#sessions li[data-id="${CSS.escape(from.session_id)}"] .title`);
    const source = element("a", "", listed?.textContent || state.titles.get(from.session_id) || from.session_id);
    source.href = "#/sessions/" + encodeURIComponent(from.session_id);
    note.append("Forked from ", source, Number.isInteger(from.seq) ? ` (its event ${from.seq})` : "",
                ": the conversation up to there is this session's context, and is shown there.");
  } else if (data.history_messages) {
    note.textContent = `Started from a client's history of ${plural(data.history_messages, "message")}: ` +
      "its context, not shown here.";
  } else {
    return;
  }
  $("#turns").prepend(note);
}

function logRow(event) {
  const body = $("#events tbody");
  const row = element("tr");
  row.append(element("td", "mono", event.seq), element("td", "muted when", when(event.created_at, true)),
             element("td", "mono", event.type), element("td", "data", clip(JSON.stringify(event.data), 600)));
  body.append(row);
  while (body.rows.length > MAX_LOG_ROWS) body.deleteRow(0);
  if (!eventLog.frame) eventLog.frame = requestAnimationFrame(followLog);
}

// The log keeps its newest row in sight unless it was scrolled up to read (away from where this last put it): set
// once a frame, as reading its height after every row laid the page out again (~2.5 ms an event: a session of a few
// hundred turns froze the page for many seconds as it opened).
const eventLog = { box: $("#events").closest(".log"), top: 0, frame: 0 };
function followLog() {
  const box = eventLog.box;
  eventLog.frame = 0;
  if (box.scrollTop < eventLog.top - 4) return;  // scrolled up: left there, until scrolled back down
  box.scrollTop = box.scrollHeight;
  eventLog.top = box.scrollTop;
}
$("#events").closest("details").addEventListener("toggle", () => {  // it was not laid out while closed
  eventLog.top = 0;
  followLog();
});

// -- acting on a session --------------------------------------------------------------------------
$("#send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const view = state.view, box = $("#turn-input"), text = box.value;
  if (!view || !text.trim()) return;
  $("#send-error").textContent = "";
  try {
    // queue: sent while a turn runs (or waits for an answer), it waits behind that turn instead of being a 409
    await api(sessionPath(view.id, "/turns"), "POST", { input: text, background: true, queue: true });
    if (box.value === text) box.value = "";  // sent: but not what was typed since, here or in another session
  } catch (error) {
    if (state.view === view) $("#send-error").textContent = error.message;
  }
});
$("#turn-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("#send").requestSubmit();
});

$("#interrupt").addEventListener("click", async () => {
  const view = state.view;
  if (!view) return;
  $("#interrupt").disabled = true;
  $("#send-error").textContent = "";
  try {
    await api(sessionPath(view.id, "/interrupt"), "POST");
  } catch (error) {
    if (state.view !== view) return;
    $("#send-error").textContent = error.message;
    $("#interrupt").disabled = !BUSY.includes(view.status);  // not sent (the gateway did not answer): try again
  }
});

// Two clicks, the second within a few seconds: no native dialog, which would block the page.
$("#delete-session").addEventListener("click", async () => {
  const view = state.view, control = $("#delete-session");
  if (!view) return;
  if (control.textContent !== "Confirm delete") {
    control.textContent = "Confirm delete";
    setTimeout(() => { if (state.view === view) control.textContent = "Delete"; }, 4000);
    return;
  }
  try {
    await api(sessionPath(view.id), "DELETE");
    if (state.view === view) {  // still shown: leave it (another session opened meanwhile stays open)
      stopFollowing();
      location.hash = "#/";
    }
    await loadSessions();
  } catch (error) {
    if (state.view === view) $("#send-error").textContent = error.message;
  }
});

// A queued turn, taken back before it starts (POST /interrupt naming it): it ends interrupted, never run.
async function withdrawTurn(view, turnId, control) {
  control.disabled = true;
  try {
    await api(sessionPath(view.id, "/interrupt"), "POST", { turn_id: turnId });
  } catch (error) {
    control.disabled = false;
    if (state.view === view) $("#send-error").textContent = error.message;
  }
}

async function forkFrom(view, turnId) {
  try {
    const fork = await api(sessionPath(view.id, "/fork"), "POST", { turn_id: turnId });
    // opened at once: waiting for the list to be read again (a title looked up for each session) first held the
    // fork back for as long as that took on a busy gateway
    if (state.view === view) location.hash = "#/sessions/" + encodeURIComponent(fork.id);
    loadSessions();
  } catch (error) {
    if (state.view === view) $("#send-error").textContent = error.message;
  }
}

// -- start ----------------------------------------------------------------------------------------
function route() {
  const match = location.hash.match(/^#\/sessions\/(.+)$/);
  let id = match?.[1] ?? null;
  try {
    id = id && decodeURIComponent(id);
  } catch {}  // a malformed %-escape: the id as written (the gateway answers that it does not exist)
  openSession(id);
}

async function start() {
  try {
    await api("/api/sessions?limit=1");
  } catch (error) {
    if (error.status === 401) return;  // api() asked for the key
  }
  $("#key-panel").hidden = true;
  $("#app").hidden = false;
  $("#forget-key").hidden = !state.key;
  $("#docs-link").hidden = Boolean(state.key);  // /docs needs the key too, which a link cannot send
  state.started = true;
  await Promise.all([loadSessions(), loadModels(), showLimits()]);
  route();
}

window.addEventListener("hashchange", route);
showVersions().catch(() => {});
showHealth();
setInterval(showHealth, 10000);
setInterval(() => { if (state.started && !$("#app").hidden && !document.hidden) loadSessions(); }, LIST_POLL_MS);
start();

// The run page's only script (shipped inline, no build). It keeps the server-rendered page current:
// a WebSocket to the run's object brings each event; transcript entries are appended as they come, and
// any other change re-fetches the server's render of the #live region and swaps it in, keeping each
// transcript's scroll position, open rounds and the prompt being typed.
(() => {
  const base = document.body.dataset.base;
  const conn = document.getElementById("conn");
  const message = document.getElementById("message");
  const MAX_ENTRIES = 500;
  let seq = Number(document.getElementById("live").dataset.seq || "0");
  let retryMs = 500;
  /** Entries for transcripts not on the page yet (a new round's panes), by "round:attempt". */
  const pending = new Map();

  const say = (text, isError) => {
    message.textContent = text;
    message.className = `message${isError ? " error" : ""}`;
  };

  const clip = (s) => (s.length > 600 ? `${s.slice(0, 599)}…` : s);

  function lineOf(e) {
    const d = e.data || {};
    switch (e.type) {
      case "agent.text": return String(d.text ?? "");
      case "agent.tool": return `[tool] ${d.name ?? ""} ${d.input ?? ""}`;
      case "agent.tool_result": return `[${d.isError ? "tool error" : "tool result"}] ${d.content ?? ""}`;
      case "agent.result": return `[result${d.subtype ? ` ${d.subtype}` : ""}] ${(d.summary && d.summary.finalMessage) || ""}`;
      case "agent.init": return `[init] model ${d.model ?? "unknown"}`;
      default: return `[${e.type}] ${JSON.stringify(d)}`;
    }
  }

  function append(ol, e) {
    if (e.seq <= Number(ol.dataset.seq || "0")) return;
    const li = document.createElement("li");
    const kind = e.type === "agent.tool_result" && e.data && e.data.isError ? "error" : e.type.replace("agent.", "");
    li.className = `tx-${kind}`;
    li.dataset.seq = String(e.seq);
    li.textContent = clip(lineOf(e));
    const stick = ol.scrollTop + ol.clientHeight >= ol.scrollHeight - 8;
    ol.appendChild(li);
    ol.dataset.seq = String(e.seq);
    // A long transcript keeps only its newest entries on the page; the full one is a link away.
    let dropped = 0;
    while (ol.children.length > MAX_ENTRIES) {
      ol.firstElementChild.remove();
      dropped++;
    }
    if (dropped) {
      const more = ol.parentElement.querySelector(".tx-more");
      const hidden = Number(more.dataset.hidden || "0") + dropped;
      more.dataset.hidden = String(hidden);
      more.querySelector(".tx-hidden").textContent = String(hidden);
      more.hidden = false;
    }
    if (stick) ol.scrollTop = ol.scrollHeight;
  }

  function onEntry(e) {
    const key = `${e.round}:${e.attempt}`;
    const ol = document.querySelector(`ol.tx[data-tx="${key}"]`);
    if (ol) append(ol, e);
    else {
      if (!pending.has(key)) pending.set(key, []);
      pending.get(key).push(e);
    }
  }

  // ---- swapping in a fresh render of the live region
  let refreshing = false;
  let again = false;
  let timer = null;
  function refreshSoon() {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      refresh();
    }, 200);
  }
  async function refresh() {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    try {
      const res = await fetch(`${base}/live.html`, { headers: { accept: "text/html" } });
      if (res.status === 404) {
        say("This link has expired or was revoked.", true);
        return;
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      swap(await res.text());
    } catch (err) {
      again = true;
      setTimeout(refreshSoon, 2000);
    } finally {
      refreshing = false;
      if (again) {
        again = false;
        refreshSoon();
      }
    }
  }
  function swap(html) {
    const live = document.getElementById("live");
    const tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    const next = tpl.content.firstElementChild;
    if (!next) return;
    const keep = new Map();
    for (const ol of live.querySelectorAll("ol.tx")) {
      // Moving a node loses its scroll position: remember it (or that it followed the bottom).
      const bottom = ol.scrollTop + ol.clientHeight >= ol.scrollHeight - 8;
      keep.set(ol.dataset.tx, { ol, more: ol.parentElement.querySelector(".tx-more"), top: ol.scrollTop, bottom });
    }
    const open = new Map();
    for (const d of live.querySelectorAll("details[id]")) open.set(d.id, d.open);
    for (const ol of next.querySelectorAll("ol.tx")) {
      const old = keep.get(ol.dataset.tx);
      if (old && Number(old.ol.dataset.seq || "0") >= Number(ol.dataset.seq || "0")) {
        ol.parentElement.querySelector(".tx-more").replaceWith(old.more);
        ol.replaceWith(old.ol);
      }
    }
    for (const d of next.querySelectorAll("details[id]")) if (open.has(d.id)) d.open = open.get(d.id);
    live.replaceWith(next);
    for (const { ol, top, bottom } of keep.values()) if (ol.isConnected) ol.scrollTop = bottom ? ol.scrollHeight : top;
    for (const ol of next.querySelectorAll("ol.tx")) if (!keep.has(ol.dataset.tx)) ol.scrollTop = ol.scrollHeight;
    for (const [key, entries] of pending) {
      const ol = document.querySelector(`ol.tx[data-tx="${key}"]`);
      if (!ol) continue;
      for (const e of entries) append(ol, e);
      pending.delete(key);
    }
    tick();
  }

  // ---- the WebSocket, reconnecting from the last event seen
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}${base}/live?after=${seq}`);
    let ping = null;
    ws.onopen = () => {
      retryMs = 500;
      conn.textContent = "live";
      conn.className = "conn live";
      ping = setInterval(() => ws.readyState === 1 && ws.send("ping"), 30000);
    };
    ws.onmessage = (m) => {
      if (m.data === "pong") return;
      const msg = JSON.parse(m.data);
      if (msg.type === "event") {
        const e = msg.event;
        if (e.seq <= seq) return;
        seq = e.seq;
        if (e.type.startsWith("agent.") && e.round !== null && e.attempt !== null) onEntry(e);
        else refreshSoon();
      } else if (msg.type === "snapshot" || msg.type === "run") {
        seq = Math.max(seq, msg.seq);
        refreshSoon();
      }
    };
    ws.onclose = (ev) => {
      clearInterval(ping);
      if (ev.code === 4001) {
        conn.textContent = "link expired";
        conn.className = "conn down";
        say("This link has expired or was revoked.", true);
        return;
      }
      conn.textContent = "reconnecting…";
      conn.className = "conn down";
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    };
  }

  // ---- elapsed times
  function fmt(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
  }
  function tick() {
    for (const t of document.querySelectorAll("time.elapsed")) {
      const from = Number(t.dataset.from);
      const to = t.dataset.to ? Number(t.dataset.to) : Date.now();
      t.textContent = fmt(to - from);
    }
  }
  setInterval(tick, 1000);

  // ---- controls (control links only; the server refuses them for view links anyway)
  async function post(path, body) {
    const res = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body ?? {}),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((json.error && json.error.message) || `HTTP ${res.status}`);
    return json;
  }
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button.pick, button.cancel, button.preview, button.preview-all");
    if (!btn) return;
    btn.disabled = true;
    try {
      if (btn.classList.contains("preview")) {
        say(`Starting attempt ${btn.dataset.attempt}'s preview…`);
        const p = await post(`/rounds/${btn.dataset.round}/attempts/${btn.dataset.attempt}/preview`).catch((err) => ({ error: { message: err.message } }));
        if (p.url) say(`Attempt ${p.attempt}'s preview is ready.`);
        else say(`Attempt ${btn.dataset.attempt}: ${p.error.message}`, true);
      } else if (btn.classList.contains("preview-all")) {
        say("Starting every attempt's preview…");
        const { previews } = await post(`/rounds/${btn.dataset.round}/preview`);
        const failed = previews.filter((p) => p.error);
        say(failed.length ? failed.map((p) => `Attempt ${p.attempt}: ${p.error.message}`).join("\n") : "Every preview is ready.", failed.length > 0);
      } else if (btn.classList.contains("pick")) {
        await post(`/rounds/${btn.dataset.round}/winner`, { attempt: Number(btn.dataset.attempt) });
        say(`Picked attempt ${btn.dataset.attempt} as round ${btn.dataset.round}'s winner; packing its workspace.`);
      } else {
        if (!confirm("Cancel this run? Every attempt still working stops.")) return;
        await post("/cancel");
        say("Run cancelled.");
      }
      refreshSoon();
    } catch (err) {
      say(err.message, true);
    } finally {
      btn.disabled = false;
    }
  });
  const form = document.getElementById("next-round");
  if (form) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const prompt = form.elements.prompt.value;
        const run = await post("/rounds", { prompt });
        form.reset();
        say(`Round ${run.rounds[run.rounds.length - 1].number} started.`);
        refreshSoon();
      } catch (err) {
        say(err.message, true);
      } finally {
        button.disabled = false;
      }
    });
  }

  for (const ol of document.querySelectorAll("ol.tx")) ol.scrollTop = ol.scrollHeight;
  tick();
  connect();
})();

// gridwatch chat simulator: a phone-like chat per person, over /sim/api (no libraries).
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const app = $("app");
  const API = app.dataset.api;
  const WEEK = "日一二三四五六";
  const state = { person: null, lastOut: -1, lastKey: "", clock: null, clockAt: 0, next: null };
  let seen = {};
  try { seen = JSON.parse(localStorage.getItem("gw-seen") || "{}"); } catch (e) { seen = {}; }

  async function call(path, body) {
    const options = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const response = await fetch(API + path, options);
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!response.ok) throw new Error(data.error || ("请求失败（" + response.status + "）"));
    return data;
  }

  // Times arrive as ISO strings with the configured zone's offset; show them in that zone.
  function parts(iso) {
    const offset = /([+-])(\d\d):(\d\d)$/.exec(iso);
    const minutes = offset ? (offset[1] === "-" ? -1 : 1) * (+offset[2] * 60 + +offset[3]) : 0;
    return { ms: Date.parse(iso), offset: minutes };
  }
  function fields(ms, offset) {
    const d = new Date(ms + offset * 60000);
    return {
      date: (d.getUTCMonth() + 1) + "月" + d.getUTCDate() + "日",
      week: "周" + WEEK[d.getUTCDay()],
      time: String(d.getUTCHours()).padStart(2, "0") + ":" + String(d.getUTCMinutes()).padStart(2, "0"),
    };
  }
  function fmt(ms, offset, withDate) {
    const f = fields(ms, offset);
    return withDate ? f.date + " " + f.week + " " + f.time : f.time;
  }
  function localInput(iso) { return iso.slice(0, 16); }

  function toast(text, isError) {
    const box = $("toast");
    box.textContent = text;
    box.classList.toggle("error", !!isError);
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 6000);
  }

  // Text with clickable http(s) links, built as DOM nodes (never innerHTML).
  function linkify(node, text) {
    const pattern = /https?:\/\/[^\s，。、）)]+/g;
    let at = 0, match;
    while ((match = pattern.exec(text))) {
      node.append(text.slice(at, match.index));
      const a = document.createElement("a");
      a.href = match[0];
      a.textContent = match[0].length > 48 ? match[0].slice(0, 44) + "…" : match[0];
      a.title = match[0];
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.className = "msg-link";
      node.append(a);
      at = match.index + match[0].length;
    }
    node.append(text.slice(at));
  }

  function renderMessages(person, messages) {
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.replaceChildren();
    let previous = null;
    for (const m of messages) {
      const t = parts(m.at);
      if (previous === null || t.ms - previous > 5 * 60000) {
        const divider = document.createElement("li");
        divider.className = "divider";
        divider.textContent = fmt(t.ms, t.offset, true);
        list.append(divider);
      }
      previous = t.ms;
      const li = document.createElement("li");
      li.className = "msg " + (m.from === "bot" ? "bot" : "me") + (m.kind ? " kind-" + m.kind : "");
      li.dataset.key = m.key;
      const avatar = document.createElement("span");
      avatar.className = "avatar " + (m.from === "bot" ? "bot-avatar" : "role-" + person.role);
      avatar.textContent = m.from === "bot" ? "网" : person.name.slice(0, 1);
      avatar.setAttribute("aria-hidden", "true");
      const wrap = document.createElement("div");
      wrap.className = "bubble-wrap";
      if (m.from === "bot" && m.kind !== "reply") {
        const tag = document.createElement("span");
        tag.className = "kind";
        tag.textContent = m.kind_label;
        wrap.append(tag);
      }
      const bubble = document.createElement("div");
      bubble.className = "bubble";
      linkify(bubble, m.text);
      const time = document.createElement("time");
      time.className = "msg-time";
      time.textContent = fmt(t.ms, t.offset, false) + (m.status && m.status !== "sent" ? " · " + m.status : "");
      wrap.append(bubble, time);
      li.append(avatar, wrap);
      list.append(li);
    }
    if (!messages.length) {
      const li = document.createElement("li");
      li.className = "divider";
      li.textContent = "还没有消息";
      list.append(li);
    }
    if (atBottom || state.scrollDown) list.scrollTop = list.scrollHeight;
    state.scrollDown = false;
  }

  function renderQuick(suggestions) {
    const quick = $("quick");
    quick.replaceChildren();
    for (const text of suggestions) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "chip-button";
      b.textContent = text;
      b.addEventListener("click", () => { $("text").value = text; $("text").focus(); });
      quick.append(b);
    }
  }

  async function loadChat(force) {
    if (state.person === null) return;
    const id = state.person;
    const data = await call("/chat/" + id);
    if (id !== state.person) return;
    const p = data.person;
    $("chat-name").textContent = p.name;
    $("chat-sub").textContent = [p.roles.join("、"), p.unit_name, p.phone].filter(Boolean).join(" · ")
      + (p.bound ? "" : " · 未绑定微信");
    const avatar = $("chat-avatar");
    avatar.textContent = p.name.slice(0, 1);
    avatar.className = "avatar role-" + p.role;
    const last = data.messages.length ? data.messages[data.messages.length - 1].key : "";
    if (force || last !== state.lastKey) {
      renderMessages(p, data.messages);
      state.lastKey = last;
    }
    renderQuick(data.suggestions || []);
    markSeen(id, data.last_out || 0);
  }

  function markSeen(id, lastOut) {
    seen[id] = Math.max(seen[id] || 0, lastOut);
    try { localStorage.setItem("gw-seen", JSON.stringify(seen)); } catch (e) { /* private mode */ }
    const badge = document.querySelector('.person[data-id="' + id + '"] [data-badge]');
    if (badge) badge.hidden = true;
  }

  async function loadPeople() {
    const data = await call("/people");
    const first = Object.keys(seen).length === 0;
    for (const group of data.groups) {
      for (const p of group.people) {
        const link = document.querySelector('.person[data-id="' + p.id + '"]');
        if (!link) continue;
        if (first) seen[p.id] = p.last_out; // a first visit starts with nothing unread
        if (p.preview) link.querySelector("[data-preview]").textContent = p.preview;
        const badge = link.querySelector("[data-badge]");
        const unread = p.id !== state.person && p.last_out > (seen[p.id] || 0);
        badge.hidden = !unread;
        badge.textContent = unread ? "新" : "";
      }
    }
  }

  function openPerson(id) {
    state.person = id;
    state.lastKey = "";
    state.scrollDown = true;
    document.body.classList.add("show-chat");
    document.querySelectorAll(".person").forEach((a) => {
      a.classList.toggle("active", a.dataset.id === String(id));
    });
    $("chat-empty").hidden = true;
    for (const el of ["chat-head", "messages", "composer"]) $(el).hidden = false;
    $("messages").replaceChildren();
    loadChat(true).catch((e) => toast(e.message, true));
  }

  function route() {
    const match = /^#p(\d+)$/.exec(location.hash);
    if (match) {
      openPerson(+match[1]);
    } else {
      state.person = null;
      document.body.classList.remove("show-chat");
      document.querySelectorAll(".person.active").forEach((a) => a.classList.remove("active"));
    }
  }

  function renderClock(data) {
    const t = parts(data.now);
    state.clock = t;
    state.clockAt = Date.now();
    state.next = data.next;
    tickClock();
    const button = $("next-event");
    button.disabled = !data.next;
    if (data.next) {
      const n = parts(data.next.at);
      const wide = document.createElement("span");
      wide.className = "wide-only";
      wide.textContent = "下一事件：";
      button.replaceChildren("▶ ", wide, fmt(n.ms, n.offset, false) + " " + data.next.label);
      if (!$("clock-more").open) $("clock-to").value = localInput(data.next.at);
    } else {
      button.textContent = "没有待运行的任务";
    }
  }

  function tickClock() {
    if (!state.clock) return;
    const f = fields(state.clock.ms + (Date.now() - state.clockAt), state.clock.offset);
    $("clock-date").textContent = f.date;
    $("clock-week").textContent = f.week;
    $("clock-time").textContent = f.time;
  }

  async function refreshAfter(data) {
    renderClock(data);
    if (data.last_out !== state.lastOut) {
      state.lastOut = data.last_out;
      await Promise.all([loadPeople(), loadChat(false)]);
    }
  }

  async function poll() {
    try {
      await refreshAfter(await call("/clock"));
    } catch (e) {
      toast("与服务器的连接中断：" + e.message, true);
    }
  }

  function summary(ran) {
    const done = ran.filter((r) => r.outcome === "ran");
    if (!done.length) return "时钟已拨到 " + $("clock-time").textContent + "，没有要运行的任务";
    const names = done.map((r) => fmt(parts(r.due).ms, parts(r.due).offset, false) + " " + r.label);
    return "已运行：" + names.join("，");
  }

  async function advance(to) {
    const button = $("next-event");
    button.disabled = true;
    try {
      const data = await call("/clock", { to });
      state.scrollDown = true;
      await refreshAfter(data);
      toast(summary(data.ran));
    } catch (e) {
      toast(e.message, true);
      button.disabled = false;
    }
  }

  async function send(event) {
    event.preventDefault();
    const box = $("text");
    const text = box.value.trim();
    if (!text || state.person === null) return;
    $("send").disabled = true;
    try {
      await call("/send", { person: state.person, text });
      box.value = "";
      autosize();
      state.scrollDown = true;
      await loadChat(true);
      await poll();
    } catch (e) {
      toast(e.message, true);
    } finally {
      $("send").disabled = false;
      box.focus();
    }
  }

  function autosize() {
    const box = $("text");
    box.style.height = "auto";
    box.style.height = Math.min(box.scrollHeight, 160) + "px";
  }

  $("composer").addEventListener("submit", send);
  $("text").addEventListener("input", autosize);
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  $("next-event").addEventListener("click", () => advance("next"));
  $("clock-form").addEventListener("submit", (e) => {
    e.preventDefault();
    $("clock-more").open = false;
    advance($("clock-to").value);
  });
  $("back").addEventListener("click", (e) => { e.preventDefault(); history.pushState(null, "", location.pathname); route(); });
  window.addEventListener("hashchange", route);
  setInterval(tickClock, 1000);
  setInterval(poll, 4000);
  route();
  poll();
})();

// The viewer's only script: follows a live run over server-sent events, and a few toggles.
// Every page works without it; messages arrive as HTML the server rendered (and escaped).
"use strict";

(function () {
  const chat = document.getElementById("chat");
  if (chat && chat.dataset.events) follow(chat, chat.dataset.events);

  const toggle = document.getElementById("toggle-meta");
  if (toggle) {
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-pressed") !== "true";
      toggle.setAttribute("aria-pressed", String(open));
      toggle.textContent = open ? "hide all details" : "show all details";
      document.querySelectorAll("details.meta").forEach((d) => { d.open = open; });
    });
  }

  // Messages as Markdown (the default) or as their exact text; messages that arrive live follow the choice.
  const raw = document.getElementById("toggle-raw");
  if (raw && chat) {
    raw.addEventListener("click", () => {
      const on = raw.getAttribute("aria-pressed") !== "true";
      raw.setAttribute("aria-pressed", String(on));
      raw.textContent = on ? "rendered text" : "raw text";
      chat.classList.toggle("raw-text", on);
    });
  }

  // A link to something folded away (an event, a message in the looped tail) opens what holds it.
  const reveal = () => {
    const target = window.location.hash && document.getElementById(decodeURIComponent(window.location.hash.slice(1)));
    let opened = false;
    for (let d = target && target.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) {
      if (!d.open) opened = d.open = true;
    }
    if (opened) target.scrollIntoView();
  };
  window.addEventListener("hashchange", reveal);
  reveal();

  // Filters apply as soon as one is picked, with only the ones set in the address.
  document.querySelectorAll("form.filters").forEach((form) => {
    const apply = (event) => {
      if (event) event.preventDefault();
      const params = new URLSearchParams(new FormData(form));
      for (const [key, value] of [...params]) if (!value) params.delete(key);
      const query = params.toString();
      window.location.assign(form.getAttribute("action") + (query ? "?" + query : ""));
    };
    form.addEventListener("submit", apply);
    form.querySelectorAll("select").forEach((select) => select.addEventListener("change", () => apply()));
  });

  function follow(chat, url) {
    const source = new EventSource(url);
    const count = document.getElementById("message-count");
    source.addEventListener("message", (event) => {
      const data = JSON.parse(event.data);
      if (document.getElementById("m" + data.index)) return; // already shown (a reconnect)
      const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 120;
      chat.insertAdjacentHTML("beforeend", data.html);
      if (count) count.textContent = String(data.index);
      if (atBottom) window.scrollTo(0, document.body.scrollHeight);
    });
    // The run has stopped: reload for the final page (stop reason, loop marker, charts).
    source.addEventListener("end", () => {
      source.close();
      window.location.reload();
    });
  }
})();

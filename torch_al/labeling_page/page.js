// The labeling page: shows the pending query, sends one answer per click or key, and redraws from
// what the server answers (the server holds the ledger; the page holds nothing that could be lost).
"use strict";

const token = new URLSearchParams(location.search).get("token");
let state = null;
let current = null; // the global index of the highlighted item
let queue = Promise.resolve(); // answers typed faster than the server replies wait their turn, none is dropped
let waiting = 0;

const $ = (id) => document.getElementById(id);

async function call(path, body) {
  const headers = { "X-Torch-AL": "1" };
  if (token) headers["X-Torch-AL-Token"] = token;
  const options = body === undefined ? { headers } : { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const payload = await response.json();
  if (!response.ok) throw new Error(payload.error || response.statusText);
  return payload;
}

function firstUnlabeled(after) {
  const items = state.items;
  const start = Math.max(0, items.findIndex((item) => item.index === after));
  for (let k = 0; k < items.length; k++) {
    const item = items[(start + k) % items.length];
    if (item.label === null) return item.index;
  }
  return null;
}

function chooseCurrent() {
  if (state.reopened !== null) current = state.reopened;
  else {
    const item = state.items.find((candidate) => candidate.index === current);
    if (!item || item.label !== null) current = firstUnlabeled(current);
  }
}

function drawClasses() {
  const box = $("classes");
  if (box.dataset.classes === JSON.stringify(state.classes)) return;
  box.dataset.classes = JSON.stringify(state.classes);
  box.replaceChildren(...state.classes.map((name, label) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.label = label;
    button.textContent = name;
    if (label < 10) {
      const key = document.createElement("kbd");
      key.textContent = (label + 1) % 10;
      button.append(key);
    }
    button.addEventListener("click", () => answer(label));
    return button;
  }));
}

function drawGrid() {
  const grid = $("grid");
  const wanted = state.items.map((item) => item.index).join(",");
  if (grid.dataset.items !== wanted) {
    grid.dataset.items = wanted;
    grid.replaceChildren(...state.items.map((item) => {
      const card = document.createElement("figure");
      card.className = "item";
      card.id = `item-${item.index}`;
      card.dataset.index = item.index;
      if (item.kind === "image") {
        const image = document.createElement("img");
        image.alt = `item ${item.index}`;
        image.src = `item/${item.index}` + (token ? `?token=${encodeURIComponent(token)}` : "");
        card.append(image);
      } else {
        const text = document.createElement("div");
        text.className = "text";
        text.textContent = item.text;
        card.append(text);
      }
      const caption = document.createElement("figcaption");
      caption.className = "caption";
      card.append(caption);
      card.addEventListener("click", () => { current = item.index; draw(); });
      return card;
    }));
  }
  for (const item of state.items) {
    const card = $(`item-${item.index}`);
    card.classList.toggle("labeled", item.label !== null);
    card.classList.toggle("current", item.index === current);
    card.querySelector(".caption").textContent = item.label === null ? `#${item.index}` : `#${item.index} · ${state.classes[item.label]}`;
  }
}

function draw() {
  $("round").textContent = `round ${state.round}` + (state.strategy ? ` · chosen by ${state.strategy}` : "");
  const share = state.total ? state.answered / state.total : 0;
  $("progress-bar").style.width = `${100 * share}%`;
  $("progress").setAttribute("aria-valuenow", state.answered);
  $("progress").setAttribute("aria-valuemax", state.total);
  const earlier = state.open_round_answered ? ` (${state.open_round_answered} more in earlier sub-batches of this round)` : "";
  $("progress-text").textContent = `${state.answered} of ${state.total} labeled${earlier}`;
  $("status").textContent = state.status === "labeling" ? "" : state.status;
  drawClasses();
  for (const button of $("classes").children) button.disabled = current === null;
  $("undo").disabled = !state.can_undo;
  drawGrid();
  const card = current === null ? null : $(`item-${current}`);
  if (card) card.scrollIntoView({ block: "nearest" });
}

// makeBody runs when the action's turn comes, so a queued answer goes to the item highlighted then.
function act(path, makeBody) {
  waiting += 1;
  queue = queue.then(async () => {
    const body = makeBody();
    if (body === null) return;
    try {
      state = await call(path, body);
      $("message").textContent = "";
      if (body.index !== undefined && state.reopened === null) current = firstUnlabeled(body.index);
    } catch (error) {
      $("message").textContent = error.message;
    }
  }).finally(() => {
    waiting -= 1;
    chooseCurrent();
    draw();
  });
}

function answer(label) {
  act("api/answer", () => (current === null ? null : { index: current, label }));
}

function undo() {
  act("api/undo", () => ({}));
}

function move(step) {
  const items = state.items;
  if (!items.length) return;
  const at = items.findIndex((item) => item.index === current);
  current = items[(at + step + items.length) % items.length].index;
  draw();
}

document.addEventListener("keydown", (event) => {
  if (!state || event.altKey || event.metaKey) return;
  if ((event.key === "z" && event.ctrlKey) || (event.key.toLowerCase() === "u" && !event.ctrlKey)) undo();
  else if (event.ctrlKey) return;
  else if (/^[0-9]$/.test(event.key)) {
    const label = (Number(event.key) + 9) % 10;
    if (label < state.classes.length) answer(label);
  } else if (event.key === "ArrowRight") move(1);
  else if (event.key === "ArrowLeft") move(-1);
  else return;
  event.preventDefault();
});

$("undo").addEventListener("click", undo);

async function refresh() {
  try {
    state = await call("api/query");
    chooseCurrent();
    draw();
  } catch (error) {
    $("message").textContent = error.message;
  }
}

// While nothing is pending, look again now and then: a query selected in a terminal appears.
setInterval(() => { if (!waiting && state && state.status !== "labeling" && state.reopened === null) refresh(); }, 3000);
refresh();

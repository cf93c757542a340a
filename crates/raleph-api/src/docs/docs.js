// The interactive API page: reads the OpenAPI document and builds a form per operation.
// Everything from the document or a response is written with textContent, never as markup.
"use strict";

const SPEC_URL = "/api/openapi.json";
// Bytes of a response shown at most; the rest is cut.
const MAX_SHOWN = 256 * 1024;
// Websocket messages shown per connection.
const MAX_WS_MESSAGES = 50;

function el(tag, props, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children || []) node.append(child);
  return node;
}

function show(out, status, text, bad) {
  out.status.textContent = status;
  out.status.className = bad ? "status bad" : "status";
  out.body.textContent = text.length > MAX_SHOWN ? text.slice(0, MAX_SHOWN) + "\n… (cut)" : text;
  out.body.classList.remove("hidden");
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (_) {
    return text;
  }
}

// The request URL from the filled-in fields: path parameters replaced, query ones appended.
function requestUrl(path, fields) {
  let url = path;
  const query = new URLSearchParams();
  for (const field of fields) {
    const value = field.input.value.trim();
    if (field.where === "path") {
      url = url.split("{" + field.name + "}").join(encodeURIComponent(value));
    } else if (value !== "") {
      query.append(field.name, value);
    }
  }
  const qs = query.toString();
  return qs ? url + "?" + qs : url;
}

async function send(op, fields, body, out) {
  const url = requestUrl(op.path, fields);
  const init = { method: op.method.toUpperCase(), headers: {} };
  if (body && body.kind === "json") {
    init.headers["Content-Type"] = "application/json";
    init.body = body.input.value;
  } else if (body && body.kind === "multipart") {
    const form = new FormData();
    for (const part of body.parts) {
      if (part.input.type === "file") {
        if (part.input.files.length) form.append(part.name, part.input.files[0]);
      } else if (part.input.value !== "") {
        form.append(part.name, part.input.value);
      }
    }
    init.body = form;
  }
  show(out, init.method + " " + url + " …", "", false);
  try {
    const response = await fetch(url, init);
    const type = response.headers.get("Content-Type") || "";
    let text;
    if (type.includes("json") || type.startsWith("text/")) {
      text = type.includes("json") ? pretty(await response.text()) : await response.text();
    } else {
      const bytes = await response.arrayBuffer();
      text = "(" + bytes.byteLength + " bytes of " + (type || "unknown type") + ")";
    }
    show(out, response.status + " " + response.statusText + " — " + init.method + " " + url, text, !response.ok);
  } catch (error) {
    show(out, "request failed", String(error), true);
  }
}

function listen(op, fields, out) {
  const url = new URL(requestUrl(op.path, fields), window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const received = [];
  show(out, "connecting to " + url.pathname, "", false);
  const socket = new WebSocket(url);
  socket.addEventListener("message", (event) => {
    received.push(pretty(String(event.data)));
    if (received.length >= MAX_WS_MESSAGES) socket.close();
    show(out, "websocket: " + received.length + " message(s)", received.join("\n\n"), false);
  });
  socket.addEventListener("close", (event) => {
    show(out, "websocket closed (" + event.code + ") after " + received.length + " message(s)", received.join("\n\n"), false);
  });
  socket.addEventListener("error", () => show(out, "websocket error", received.join("\n\n"), true));
}

function field(name, where, schema, required, description) {
  const input = el("input", { type: "text", placeholder: schema && schema.default !== undefined ? String(schema.default) : "" });
  const hint = [where, schema && schema.type ? String(schema.type) : "", required ? "required" : ""].filter(Boolean).join(", ");
  const label = el("label", {}, [
    el("span", {}, [el("span", { class: "name", text: name }), el("br"), el("span", { class: "where", text: hint })]),
    input,
  ]);
  if (description) label.title = description;
  return { name, where, input, label };
}

function requestBody(op) {
  const content = (op.requestBody && op.requestBody.content) || {};
  if (content["application/json"]) {
    const input = el("textarea", { placeholder: "JSON body" });
    return { kind: "json", input, nodes: [el("p", { class: "note", text: "Body (JSON)" }), input] };
  }
  if (content["multipart/form-data"]) {
    const props = (content["multipart/form-data"].schema || {}).properties || {};
    const parts = Object.entries(props).map(([name, schema]) => {
      const binary = schema && schema.format === "binary";
      const input = binary ? el("input", { type: "file" }) : el("input", { type: "text" });
      return { name, input, label: el("label", {}, [el("span", { class: "name", text: name }), input]) };
    });
    return { kind: "multipart", parts, nodes: [el("p", { class: "note", text: "Body (multipart form)" })].concat(parts.map((p) => p.label)) };
  }
  return null;
}

function operation(path, method, op) {
  const websocket = Boolean(op["x-websocket"]);
  const info = { path, method };
  const fields = (op.parameters || []).map((p) => field(p.name, p.in, p.schema, p.required, p.description));
  const body = requestBody(op);
  const out = { status: el("div", { class: "status" }), body: el("pre", { class: "hidden" }) };
  const button = el("button", { type: "button", text: websocket ? "Connect" : "Send" });
  button.addEventListener("click", () => (websocket ? listen(info, fields, out) : send(info, fields, body, out)));
  const nodes = [];
  if (op.description) nodes.push(el("p", { text: op.description }));
  for (const f of fields) nodes.push(f.label);
  if (body) nodes.push(...body.nodes);
  nodes.push(button, out.status, out.body);
  const badge = websocket ? "ws" : method;
  const summary = el("summary", {}, [
    el("span", { class: "method " + badge, text: badge.toUpperCase() }),
    el("span", { class: "path", text: path }),
    el("span", { class: "summary", text: op.summary || "" }),
  ]);
  const details = el("details", {}, [summary, el("div", { class: "body" }, nodes)]);
  details.dataset.search = (method + " " + path + " " + (op.summary || "")).toLowerCase();
  return details;
}

function render(spec) {
  const main = document.getElementById("operations");
  main.replaceChildren();
  if (spec.info && spec.info.title) {
    document.getElementById("title").textContent = spec.info.title + " " + (spec.info.version || "");
  }
  const groups = new Map();
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "post", "head", "put", "delete", "patch"].includes(method)) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operation(path, method, op));
    }
  }
  for (const [tag, ops] of groups) {
    main.append(el("h2", { text: tag }), ...ops);
  }
  document.getElementById("filter").addEventListener("input", (event) => {
    const words = event.target.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const details of main.querySelectorAll("details")) {
      const hit = words.every((w) => details.dataset.search.includes(w));
      details.classList.toggle("hidden", !hit);
    }
  });
}

fetch(SPEC_URL)
  .then((response) => {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    const main = document.getElementById("operations");
    main.replaceChildren(el("p", { class: "note", text: "Cannot load " + SPEC_URL + ": " + error }));
  });

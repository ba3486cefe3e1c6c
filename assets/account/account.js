// The account page: sign in, the profile, the sessions, the password. It uses restjwt's public
// API in cookie mode only: the tokens live in httpOnly cookies this script never sees, unsafe
// requests carry Django's CSRF token (the `csrftoken` cookie, sent back as `X-CSRFToken`), and an
// expired access token is refreshed once, silently, before the request is retried.

const authPrefix =
  document.querySelector('meta[name="restjwt-auth-prefix"]')?.content || "/api/auth/";
const $ = (id) => document.getElementById(id);

function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  return cookie ? decodeURIComponent(cookie.slice("csrftoken=".length)) : "";
}

function say(message) {
  $("status").textContent = message;
}

/** One JSON request; `retry` allows one silent refresh after a 401. */
async function call(method, path, body, retry = true) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && retry && (await refresh())) {
    return call(method, path, body, false);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { ok: response.ok, status: response.status, json };
}

/** Asks for a new access token with the refresh cookie; true when one was set. */
async function refresh() {
  const response = await fetch(`${authPrefix}token/refresh/`, {
    method: "POST",
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    credentials: "same-origin",
  });
  return response.ok;
}

/** Shows a DRF error body on a form: field errors beside their fields, the rest on top. */
function showErrors(form, json) {
  for (const element of form.querySelectorAll(".field-error, .form-error")) {
    element.textContent = "";
  }
  for (const input of form.querySelectorAll("input")) input.removeAttribute("aria-invalid");
  if (!json || typeof json !== "object") {
    $(`${form.id}-error`).textContent = "Something went wrong; please try again.";
    return;
  }
  const general = [];
  for (const [field, messages] of Object.entries(json)) {
    const text = Array.isArray(messages) ? messages.join(" ") : String(messages);
    const slot = $(`${form.id}-${field}-error`);
    if (slot) {
      slot.textContent = text;
      $(`${form.id}-${field}`)?.setAttribute("aria-invalid", "true");
    } else {
      general.push(text);
    }
  }
  $(`${form.id}-error`).textContent = general.join(" ");
  form.querySelector('[aria-invalid="true"]')?.focus();
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function time(text) {
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toLocaleString();
}

async function showSessions() {
  const { ok, json } = await call("GET", "/api/sessions/");
  const body = $("sessions");
  body.replaceChildren();
  if (!ok || !Array.isArray(json)) return;
  for (const session of json) {
    const row = document.createElement("tr");
    if (session.current) row.className = "current";
    const device = session.device || "Unknown device";
    for (const text of [
      session.current ? `${device} (this device)` : device,
      session.ip || "unknown",
      time(session.created),
      time(session.last_refreshed),
    ]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const action = document.createElement("td");
    if (!session.current) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Sign out";
      button.setAttribute("aria-label", `Sign out ${device}, signed in ${time(session.created)}`);
      button.addEventListener("click", async () => {
        const result = await call("DELETE", `/api/sessions/${encodeURIComponent(session.id)}/`);
        say(result.ok ? `Signed out ${device}.` : "That session could not be ended.");
        await showSessions();
      });
      action.append(button);
    }
    row.append(action);
    body.append(row);
  }
}

async function showAccount(user) {
  $("username").textContent = user.username;
  for (const field of ["email", "first_name", "last_name"]) {
    $(`profile-${field}`).value = user[field] ?? "";
  }
  $("signin-view").hidden = true;
  $("account-view").hidden = false;
  await showSessions();
}

function showSignIn(message) {
  $("account-view").hidden = true;
  $("signin-view").hidden = false;
  if (message) say(message);
  $("signin-username").focus();
}

async function start() {
  const { ok, json } = await call("GET", `${authPrefix}user/`);
  if (ok && json) {
    await showAccount(json);
  } else {
    showSignIn("");
  }
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const { ok, json } = await call("POST", `${authPrefix}login/`, formValues(form), false);
  if (!ok) {
    showErrors(form, json);
    return;
  }
  form.reset();
  say("Signed in.");
  await showAccount(json.user);
});

$("profile").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const { ok, json } = await call("PATCH", `${authPrefix}user/`, formValues(form));
  if (!ok) {
    showErrors(form, json);
    return;
  }
  showErrors(form, {});
  say("Profile saved.");
  await showAccount(json);
});

$("password").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const { ok, json } = await call("POST", `${authPrefix}password/change/`, formValues(form));
  if (!ok) {
    showErrors(form, json);
    return;
  }
  form.reset();
  showErrors(form, {});
  say("Password changed. Your other sessions were signed out.");
  await showSessions();
});

for (const [id, scope, message] of [
  ["end-others", "others", "Signed out everywhere else."],
  ["end-all", "global", "Signed out everywhere."],
]) {
  $(id).addEventListener("click", async () => {
    const { ok } = await call("POST", "/api/logout/", { scope });
    if (!ok) {
      say("That did not work; please try again.");
    } else if (scope === "global") {
      await call("POST", `${authPrefix}logout/`, {}, false);
      showSignIn(message);
    } else {
      say(message);
      await showSessions();
    }
  });
}

$("signout").addEventListener("click", async () => {
  await call("POST", `${authPrefix}logout/`, {}, false);
  showSignIn("Signed out.");
});

start();

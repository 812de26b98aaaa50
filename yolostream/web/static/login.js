// Exchanges the token for the session cookie. A link of the form /login#token=... logs in at once: the part
// after '#' never leaves the browser, so the token appears in no server log.
"use strict";

async function logIn(token) {
  const error = document.getElementById("login-error");
  error.textContent = "";
  const r = await fetch("/v1/session", { method: "POST", headers: { Authorization: "Bearer " + token } });
  if (r.status === 204) {
    location.replace("/");
    return;
  }
  let message = r.statusText;
  try { message = (await r.json()).error; } catch (e) { /* not JSON */ }
  error.textContent = "Not logged in: " + message;
}

document.getElementById("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  logIn(document.getElementById("token").value.trim());
});

if (location.hash.startsWith("#token=")) {
  const token = decodeURIComponent(location.hash.slice(7));
  history.replaceState(null, "", "/login");
  document.getElementById("token").value = token;
  logIn(token);
}

// The API flow of the demo: POST /api/transfer; on a step-up challenge
// (401 + WWW-Authenticate: Bearer error="insufficient_user_authentication")
// open the challenge URL in a popup, wait for the token the guard's
// callback page posts back to this window, and resend the same request
// with the Step-Up-Token header.
(function () {
  'use strict';
  var form = document.getElementById('api-form');
  if (!form) { return; }
  var log = document.getElementById('api-log');
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.content : '';

  function say(text, cls) {
    var li = document.createElement('li');
    li.textContent = text;
    if (cls) { li.className = cls; }
    log.appendChild(li);
    return li;
  }

  function send(body, token) {
    var headers = {'Content-Type': 'application/json', 'Accept': 'application/json', 'X-CSRF-Token': csrf};
    if (token) { headers['Step-Up-Token'] = token; }
    return fetch('/api/transfer', {method: 'POST', headers: headers, body: body, credentials: 'same-origin'});
  }

  // openPopup opens url in a popup; when the browser blocks it, a button
  // lets the user open it with a fresh click.
  function openPopup(url) {
    var features = 'popup,width=520,height=720';
    var w = window.open(url, 'stepup-challenge', features);
    if (w) { return Promise.resolve(w); }
    return new Promise(function (resolve) {
      var li = say('Your browser blocked the popup. ');
      var b = document.createElement('button');
      b.type = 'button';
      b.id = 'api-open';
      b.textContent = 'Open the verification page';
      b.addEventListener('click', function () {
        var w2 = window.open(url, 'stepup-challenge', features);
        if (w2) { li.remove(); resolve(w2); }
      });
      li.appendChild(b);
    });
  }

  // waitForToken resolves with the token the callback page posts to its
  // opener: only from this origin, from that popup, for that action.
  function waitForToken(popup, action) {
    return new Promise(function (resolve, reject) {
      var closedAt = 0;
      var timer = setInterval(function () {
        if (!popup.closed) { return; }
        closedAt = closedAt || Date.now();
        if (Date.now() - closedAt > 1500) { done(); reject(new Error('the verification window was closed')); }
      }, 250);
      function onMessage(ev) {
        var m = ev.data;
        if (ev.origin !== window.location.origin || ev.source !== popup) { return; }
        if (!m || m.type !== 'stepup:token' || m.action !== action || typeof m.token !== 'string') { return; }
        done();
        resolve(m.token);
      }
      function done() { clearInterval(timer); window.removeEventListener('message', onMessage); }
      window.addEventListener('message', onMessage);
    });
  }

  async function readJSON(res) {
    try { return await res.json(); } catch (e) { return {}; }
  }

  async function submit(ev) {
    ev.preventDefault();
    log.textContent = '';
    var body = JSON.stringify({
      amount: Number(document.getElementById('api-amount').value),
      to: document.getElementById('api-to').value
    });
    try {
      say('POST /api/transfer ' + body);
      var res = await send(body);
      var challenge = res.status === 401 && (res.headers.get('WWW-Authenticate') || '').indexOf('insufficient_user_authentication') >= 0;
      if (challenge) {
        var c = await readJSON(res);
        say('401 ' + c.error + ': step-up required for action "' + c.action + '". Opening the challenge in a popup…');
        var popup = await openPopup(c.url);
        var token = await waitForToken(popup, c.action);
        say('Token received from the popup. Resending the same request with the ' + (c.tokenHeader || 'Step-Up-Token') + ' header…');
        res = await send(body, token);
      }
      var out = await readJSON(res);
      if (!res.ok) {
        say(res.status + ' ' + (out.error || '') + ': ' + (out.message || 'refused'), 'error');
        return;
      }
      say(res.status + ': ' + out.message, 'ok').id = 'api-result';
      var bal = document.getElementById('balance');
      if (bal && out.balance) { bal.textContent = out.balance; bal.dataset.cents = out.balanceCents; }
    } catch (e) {
      say('Stopped: ' + e.message + '.', 'error');
    }
  }

  form.addEventListener('submit', submit);
})();

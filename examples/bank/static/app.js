// The API flow of the demo, with Authsignal's browser SDK
// (@authsignal/browser, vendored at /static/authsignal-browser.js):
// POST /api/transfer; on a step-up challenge (401 + WWW-Authenticate:
// Bearer error="insufficient_user_authentication") launch the challenge URL
// in the SDK's popup mode, then resend the same request with the token in
// the Step-Up-Token header. The guard validates the token and runs the
// transfer once. When the popup cannot open (the SDK did not load, or
// launch fails), the same transfer goes through the page's form instead:
// the full-page redirect flow.
(function () {
  'use strict';
  var form = document.getElementById('api-form');
  if (!form) { return; }
  var log = document.getElementById('api-log');
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.content : '';
  var client = null;
  try {
    // launch() uses no tenant; the SDK's other methods would.
    client = new window.authsignal.Authsignal({tenantId: 'stepup-bank'});
  } catch (e) {
    client = null;
  }

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

  // redirectFlow sends the transfer as the page's form would: the guard
  // answers a browser navigation with a redirect to the challenge, and
  // runs the transfer when the browser comes back.
  function redirectFlow(amount, to) {
    say('The verification popup could not open: continuing on a full page…');
    var f = document.createElement('form');
    f.method = 'post';
    f.action = '/transfer';
    [['_csrf', csrf], ['amount', String(amount)], ['to', to]].forEach(function (kv) {
      var input = document.createElement('input');
      input.type = 'hidden';
      input.name = kv[0];
      input.value = kv[1];
      f.appendChild(input);
    });
    document.body.appendChild(f);
    f.submit();
  }

  async function readJSON(res) {
    try { return await res.json(); } catch (e) { return {}; }
  }

  // refreshAccount shows the balance and the recent transactions as they
  // are after a transfer: the page itself was not reloaded.
  async function refreshAccount() {
    var res = await fetch('/api/account', {headers: {'Accept': 'application/json'}, credentials: 'same-origin'});
    if (!res.ok) { return; }
    var acct = await readJSON(res);
    var bal = document.getElementById('balance');
    if (bal && acct.balance) { bal.textContent = acct.balance; bal.dataset.cents = acct.balanceCents; }
    var body = document.querySelector('#transactions tbody');
    if (!body || !acct.recent) { return; }
    var rows = acct.recent.map(function (t) {
      var tr = document.createElement('tr');
      [t.time, t['with'], t.amount, t.verification].forEach(function (v, i) {
        var td = document.createElement('td');
        td.textContent = v;
        if (i === 2) { td.className = 'num'; }
        tr.appendChild(td);
      });
      return tr;
    });
    if (rows.length) { body.replaceChildren.apply(body, rows); }
  }

  async function submit(ev) {
    ev.preventDefault();
    log.textContent = '';
    var amount = document.getElementById('api-amount').value;
    var to = document.getElementById('api-to').value;
    if (!client) { redirectFlow(amount, to); return; }
    var body = JSON.stringify({amount: Number(amount), to: to});
    try {
      say('POST /api/transfer ' + body);
      var res = await send(body);
      var challenge = res.status === 401 && (res.headers.get('WWW-Authenticate') || '').indexOf('insufficient_user_authentication') >= 0;
      if (challenge) {
        var c = await readJSON(res);
        say('401 ' + c.error + ': step-up required for action "' + c.action + '". Opening the challenge in a popup…');
        var result;
        try {
          result = await client.launch(c.url, {mode: 'popup'});
        } catch (e) {
          redirectFlow(amount, to);
          return;
        }
        if (!result || !result.token) {
          say('You closed the verification: nothing was sent.', 'error').id = 'api-result';
          return;
        }
        say('Token received from the popup. Resending the same request with the ' + (c.tokenHeader || 'Step-Up-Token') + ' header…');
        res = await send(body, result.token);
      }
      var out = await readJSON(res);
      if (!res.ok) {
        say(res.status + ' ' + (out.error || '') + ': ' + (out.message || 'refused'), 'error').id = 'api-result';
        return;
      }
      say(res.status + ': ' + out.message, 'ok').id = 'api-result';
      await refreshAccount();
    } catch (e) {
      say('Stopped: ' + e.message + '.', 'error');
    }
  }

  form.addEventListener('submit', submit);
})();

// A JSON API call guarded by stepup, completed with Authsignal's browser
// SDK: on 401 insufficient_user_authentication, launch the challenge URL in
// popup (iframe) or window mode, then resend the same request with the
// token in the Step-Up-Token header. The backend validates the token.
(function () {
  'use strict';
  var client = new authsignal.Authsignal({tenantId: 'emulator-tenant'});
  var log = document.getElementById('log');

  function say(text, id) {
    var li = document.createElement('li');
    li.textContent = text;
    if (id) { li.id = id; }
    log.appendChild(li);
  }

  function send(body, token) {
    var headers = {'Content-Type': 'application/json', 'Accept': 'application/json'};
    if (token) { headers['Step-Up-Token'] = token; }
    return fetch('/api/transfer', {method: 'POST', headers: headers, body: body});
  }

  async function transfer(amount, to, mode) {
    var body = JSON.stringify({amount: amount, to: to});
    var res = await send(body);
    if (res.status === 401 && (res.headers.get('WWW-Authenticate') || '').indexOf('insufficient_user_authentication') >= 0) {
      var challenge = await res.json();
      say('Verification needed for "' + challenge.action + '".');
      var result = await client.launch(challenge.url, {mode: mode});
      if (!result || !result.token) {
        say('You closed the verification: nothing was sent.', 'result');
        return;
      }
      res = await send(body, result.token);
    }
    var out = await res.json().catch(function () { return {}; });
    say(res.status + ' ' + (res.ok ? out.message : (out.error || 'error') + ': ' + (out.message || '')), 'result');
  }

  // Sign-in (guard.SignIn on the server): the password, then, on 401, the
  // challenge in the SDK's popup, then the same request with the token.
  function postSignIn(body, token) {
    var headers = {'Content-Type': 'application/json', 'Accept': 'application/json'};
    if (token) { headers['Step-Up-Token'] = token; }
    return fetch('/api/signin', {method: 'POST', headers: headers, body: body});
  }

  async function signIn(user, password) {
    var body = JSON.stringify({user: user, password: password});
    var res = await postSignIn(body);
    if (res.status === 401 && (res.headers.get('WWW-Authenticate') || '').indexOf('insufficient_user_authentication') >= 0) {
      var challenge = await res.json();
      say('Verification needed for "' + challenge.action + '".');
      var result = await client.launch(challenge.url, {mode: 'popup'});
      if (!result || !result.token) {
        say('You closed the verification: you are not signed in.', 'result');
        return;
      }
      res = await postSignIn(body, result.token);
    }
    if (res.status === 204) {
      say('204 Signed in as ' + user + '.', 'result');
      return;
    }
    var out = await res.json().catch(function () { return {}; });
    say(res.status + ' ' + (out.error || 'error') + ': ' + (out.message || ''), 'result');
  }

  document.getElementById('signin').addEventListener('submit', function (ev) {
    ev.preventDefault();
    log.textContent = '';
    signIn(document.getElementById('user').value, document.getElementById('password').value)
      .catch(function (e) { say('Stopped: ' + e.message, 'result'); });
  });

  document.getElementById('transfer').addEventListener('submit', function (ev) {
    ev.preventDefault();
    log.textContent = '';
    var mode = ev.submitter && ev.submitter.value === 'window' ? 'window' : 'popup';
    transfer(Number(document.getElementById('amount').value), document.getElementById('to').value, mode)
      .catch(function (e) { say('Stopped: ' + e.message, 'result'); });
  });
})();

/*
 * The one-time secure form. Plain browser JavaScript, no build step, served from our origin.
 * The key is sealed here with libsodium's crypto_box_seal (anonymous sender, the worker's
 * public key from the page); only the sealed box leaves the browser. The plaintext value is
 * cleared from the input as soon as it is sealed. Nothing is fetched from another origin.
 * A pasted OAuth credentials file (textarea) is sealed the same way, as pasted, after a size
 * check; of a credential choice (Bedrock key pair or API key) only the chosen fields are
 * sealed. The project id (Gemini CLI) and the key's lifetime are not secret: plain fields.
 */
(function () {
  'use strict';

  var body = document.body;
  var form = document.getElementById('keyform');
  var button = document.getElementById('submit');
  var statusEl = document.getElementById('status');
  var countdownEl = document.getElementById('countdown');
  if (!form || !button || !statusEl) return;

  var messages = {};
  try {
    messages = JSON.parse(body.getAttribute('data-messages') || '{}');
  } catch (e) {
    messages = {};
  }
  function msg(key, params) {
    var text = messages[key] || key;
    if (params) {
      text = text.replace(/\{(\w+)\}/g, function (m, name) {
        return Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : m;
      });
    }
    return text;
  }

  var publicKeyB64 = body.getAttribute('data-public-key') || '';
  var keyId = body.getAttribute('data-key-id') || '';
  var expiresAt = Date.parse(body.getAttribute('data-expires-at') || '');
  var basePath = location.pathname.replace(/\/+$/, '');
  // The status answers in the page's language (its result text and what-to-do hint).
  var pageLang = body.getAttribute('data-lang') === 'zh' ? 'zh' : 'en';
  function statusPathOf(base) {
    return base + '/status' + (pageLang === 'en' ? '' : '?lang=' + pageLang);
  }
  var statusPath = statusPathOf(basePath);
  var submitted = false;
  var sodiumReady = false;

  function show(kind, text, todo) {
    statusEl.className = 'status ' + kind;
    statusEl.textContent = text;
    if (todo) {
      var span = document.createElement('span');
      span.className = 'todo';
      span.textContent = msg('what_to_do') + todo;
      statusEl.appendChild(span);
    }
  }

  /** The what-to-do hint in the page's language; a bare code (check_billing) is never shown. */
  function todoOf(d) {
    if (d.todo_text) return d.todo_text;
    var code = d.what_to_do || '';
    return code && !/^[a-z_]+$/.test(code) ? code : '';
  }

  /** Every secret field: key inputs and credentials-file textareas. */
  function secretFields() {
    return Array.prototype.slice.call(form.querySelectorAll('input[data-env], textarea[data-env]'));
  }

  /** The secret fields of the chosen credential (a hidden choice is never sealed). */
  function inputs() {
    return secretFields().filter(function (el) {
      var group = el.closest('[data-option]');
      return !group || !group.hidden;
    });
  }

  function clearInputs() {
    secretFields().forEach(function (input) {
      input.value = '';
    });
  }

  // A choice of credentials (Bedrock: key pair or API key): show one set of inputs; what was
  // typed into the other set is dropped, so only the chosen secrets can ever be sealed.
  var choices = Array.prototype.slice.call(form.querySelectorAll('input[data-choice]'));
  choices.forEach(function (radio) {
    radio.addEventListener('change', function () {
      if (!radio.checked) return;
      choices.forEach(function (other) {
        if (other !== radio) other.checked = false;
      });
      Array.prototype.slice.call(form.querySelectorAll('[data-option]')).forEach(function (group) {
        var chosen = group.getAttribute('data-option') === radio.value;
        group.hidden = !chosen;
        if (!chosen) {
          Array.prototype.slice.call(group.querySelectorAll('[data-env]')).forEach(function (el) {
            el.value = '';
          });
        }
      });
      var first = inputs()[0];
      if (first) first.focus();
    });
  });

  var PROJECT_RE = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
  var projectEl = document.getElementById('project');
  var keepEl = document.getElementById('keep');

  /** UTF-8 length of a string. */
  function byteLength(s) {
    return new TextEncoder().encode(s).length;
  }

  // Telegram Mini App launch data (in the URL fragment, never sent to the server by the
  // browser on its own); forwarded so the server can check who opened the form.
  function telegramInitData() {
    try {
      if (window.Telegram && window.Telegram.WebApp && window.Telegram.WebApp.initData) {
        return window.Telegram.WebApp.initData;
      }
      var hash = location.hash ? location.hash.slice(1) : '';
      if (!hash) return '';
      return new URLSearchParams(hash).get('tgWebAppData') || '';
    } catch (e) {
      return '';
    }
  }

  function updateCountdown() {
    if (!countdownEl || isNaN(expiresAt)) return;
    var left = expiresAt - Date.now();
    if (left <= 0) {
      countdownEl.textContent = '';
      if (!submitted) {
        button.disabled = true;
        show('error', msg('expired_now'));
      }
      return;
    }
    countdownEl.textContent = '(' + msg('expires_in', { min: Math.max(1, Math.ceil(left / 60000)) }) + ')';
  }

  function showLocalExpiry() {
    var el = document.getElementById('expiry');
    if (!el || isNaN(expiresAt)) return;
    try {
      var local = new Date(expiresAt).toLocaleString(document.documentElement.lang || undefined, {
        dateStyle: 'medium',
        timeStyle: 'short',
      });
      // Replace the time the server rendered (with its zone: UTC, 北京时间) with the local one.
      el.textContent = el.textContent.replace(/\d{4}-\d{2}-\d{2} \d{2}:\d{2} [^\s，。)）]+/, local);
    } catch (e) {
      /* keep the UTC text */
    }
  }

  /** The status code and JSON body of a response (an empty object when the body is not JSON). */
  function readJson(res) {
    return res.json().then(
      function (data) {
        return { code: res.status, data: data };
      },
      function () {
        return { code: res.status, data: {} };
      },
    );
  }

  var pollTimer = null;
  var pollStarted = 0;
  // Set when the server answered "received, still processing" (the store was slow): if the
  // save then failed, the link is usable again and the status says so.
  var processing = null;
  var POLL_MS = 1000;
  var POLL_GIVE_UP_MS = 10 * 60 * 1000;

  function poll() {
    fetch(statusPath, { method: 'GET', credentials: 'same-origin', cache: 'no-store', referrerPolicy: 'no-referrer' })
      .then(readJson)
      .then(function (r) {
        var d = r.data || {};
        if (r.code === 200 && d.status === 'ok') {
          show('ok', (d.message || msg('ok')) + (d.masked_key ? ' (' + d.masked_key + ')' : ''));
          return;
        }
        if (r.code === 200 && d.status === 'error') {
          if (d.retry && offerRetry(d)) return;
          show('error', d.text || d.message || msg('error'), todoOf(d));
          return;
        }
        if (processing && r.code === 200 && d.status === 'awaiting_input' && !processing.since) processing.since = Date.now();
        // Another server process may answer before this one's late save lands: wait a little.
        if (processing && r.code === 200 && d.status === 'awaiting_input' && Date.now() - processing.since > 10000) {
          // Not saved after all: the same link takes the key again.
          form.classList.remove('done');
          submitted = false;
          button.disabled = false;
          show('error', processing.retry || msg('network'));
          processing = null;
          return;
        }
        if (Date.now() - pollStarted > POLL_GIVE_UP_MS) {
          show('info', msg('still_checking'));
          return;
        }
        if (r.code === 200 || r.code === 429 || r.code >= 500) {
          if (r.code === 200 && d.status === 'pending') processing = null;
          if (processing && d.status !== 'awaiting_input') processing.since = 0;
          if (processing) show('pending', processing.message);
          else if (r.code === 200) show('pending', msg('pending'));
          pollTimer = setTimeout(poll, r.code === 429 ? 5 * POLL_MS : POLL_MS);
          return;
        }
        // 404 / 410: the status is gone (more than an hour later); the chat has the result.
        show('info', msg('still_checking'));
      })
      .catch(function () {
        if (Date.now() - pollStarted > POLL_GIVE_UP_MS) {
          show('info', msg('still_checking'));
          return;
        }
        pollTimer = setTimeout(poll, 2 * POLL_MS);
      });
  }

  /**
   * The vendor refused the key (a typo): the server issued a fresh one-time link for the same
   * request, given only to this page (it holds the original link). Show the form again and
   * send the next try there. False when the answer does not look like one of our links.
   */
  function offerRetry(d) {
    var path = String(d.retry.url || '');
    if (!/^\/s\/[A-Za-z0-9_-]{43}(\?[A-Za-z0-9=&_-]*)?$/.test(path)) return false;
    var q = path.indexOf('?');
    basePath = q < 0 ? path : path.slice(0, q);
    statusPath = statusPathOf(basePath);
    try {
      history.replaceState(null, '', path + location.hash);
    } catch (e) {
      /* the address bar keeps the used link; the page still posts to the new one */
    }
    var exp = Date.parse(d.retry.expires_at || '');
    if (!isNaN(exp)) expiresAt = exp;
    processing = null;
    submitted = false;
    clearInputs();
    form.classList.remove('done');
    button.disabled = false;
    // A translated page says it in its own words; an English one adds the vendor's.
    show('error', msg('retry') + (!d.text && d.message ? ' (' + d.message + ')' : ''));
    updateCountdown();
    var first = inputs()[0];
    if (first) first.focus();
    return true;
  }

  function startPolling() {
    pollStarted = Date.now();
    if (pollTimer) clearTimeout(pollTimer);
    show('pending', processing ? processing.message : msg('pending'));
    pollTimer = setTimeout(poll, POLL_MS);
  }

  function submit(event) {
    event.preventDefault();
    if (submitted || !sodiumReady) return;
    var sodium = window.sodium;
    var fields = inputs();
    var empty = fields.filter(function (input) {
      return input.value.trim() === '';
    });
    if (empty.length > 0) {
      show('error', msg('empty'));
      empty[0].focus();
      return;
    }
    // A file pasted whole is sealed as is; a key loses the spaces a copy picks up.
    function valueOf(el) {
      return el.tagName === 'TEXTAREA' ? el.value : el.value.trim();
    }
    var tooBig = fields.filter(function (el) {
      var max = Number(el.getAttribute('data-max-bytes')) || 0;
      return max > 0 && byteLength(valueOf(el)) > max;
    });
    if (tooBig.length > 0) {
      show('error', tooBig[0].tagName === 'TEXTAREA' ? msg('file_too_big') : msg('bad_request', { msg: 'too long' }));
      tooBig[0].focus();
      return;
    }
    var projectId = projectEl ? projectEl.value.trim() : '';
    if (projectId && !PROJECT_RE.test(projectId)) {
      show('error', msg('bad_project'));
      projectEl.focus();
      return;
    }
    var keep = keepEl ? keepEl.value : 'never';
    button.disabled = true;
    show('pending', msg('sealing'));
    var sealed = {};
    try {
      var publicKey = sodium.from_base64(publicKeyB64, sodium.base64_variants.ORIGINAL);
      fields.forEach(function (input) {
        var plain = sodium.from_string(valueOf(input));
        input.value = '';
        var box = sodium.crypto_box_seal(plain, publicKey);
        sodium.memzero(plain);
        sealed[input.getAttribute('data-env')] = sodium.to_base64(box, sodium.base64_variants.ORIGINAL);
      });
    } catch (e) {
      clearInputs();
      button.disabled = false;
      show('error', msg('crypto_failed'));
      return;
    }
    clearInputs();
    submitted = true;
    show('pending', msg('sending'));

    var post = { key_id: keyId, sealed: sealed };
    // Not secret, posted as plain fields; the server checks them again.
    if (keep === '1' || keep === '7' || keep === '30') post.expires_in_days = Number(keep);
    if (projectId) post.project_id = projectId;

    var headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    var initData = telegramInitData();
    if (initData) headers['X-Telegram-Init-Data'] = initData;

    fetch(basePath, {
      method: 'POST',
      headers: headers,
      body: JSON.stringify(post),
      credentials: 'same-origin',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    })
      .then(readJson)
      .then(function (r) {
        var d = r.data || {};
        if (r.code === 202) {
          form.classList.add('done');
          processing = d.code === 'processing' ? { message: d.message || msg('pending'), retry: d.retry_message || '', since: 0 } : null;
          startPolling();
          return;
        }
        submitted = false;
        if (r.code === 409) {
          show('error', msg('reload'));
          return; // keep the button disabled: the page must be reloaded
        }
        if (r.code === 410 || r.code === 404) {
          form.classList.add('done');
          show('error', msg('gone'));
          return;
        }
        if (r.code === 429) {
          button.disabled = false;
          show('error', msg('too_many'));
          return;
        }
        if (r.code === 403) {
          show('error', msg('forbidden'));
          return;
        }
        button.disabled = false;
        if (r.code === 503 && d.code === 'busy') {
          // Nothing was taken: the link is still valid, the key can be sent again shortly.
          show('error', d.error || msg('error_generic'));
          return;
        }
        if (r.code >= 400 && r.code < 500) {
          show('error', msg('bad_request', { msg: d.error || String(r.code) }));
          return;
        }
        show('error', msg('error_generic'));
      })
      .catch(function () {
        // The request may or may not have arrived; the status tells us which.
        fetch(statusPath, { cache: 'no-store', credentials: 'same-origin' })
          .then(function (res) {
            return res.ok ? res.json() : null;
          })
          .then(function (d) {
            if (d && d.status && d.status !== 'awaiting_input') {
              form.classList.add('done');
              startPolling();
            } else {
              submitted = false;
              button.disabled = false;
              show('error', msg('network'));
            }
          })
          .catch(function () {
            submitted = false;
            button.disabled = false;
            show('error', msg('network'));
          });
      });
  }

  form.addEventListener('submit', submit);
  showLocalExpiry();
  updateCountdown();
  setInterval(updateCountdown, 15000);

  if (!window.sodium || !window.sodium.ready) {
    show('error', msg('crypto_failed'));
    return;
  }
  show('info', msg('loading'));
  window.sodium.ready.then(
    function () {
      sodiumReady = true;
      statusEl.className = 'status';
      statusEl.textContent = '';
      if (isNaN(expiresAt) || expiresAt > Date.now()) button.disabled = false;
      body.setAttribute('data-ready', '1');
      var first = inputs()[0];
      if (first) first.focus();
    },
    function () {
      show('error', msg('crypto_failed'));
    },
  );
})();

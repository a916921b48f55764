/* Adtivity browser snippet: plain JavaScript, no build, no dependencies. Served at /sdk/adtivity.js.
 *
 *   <script src="https://your-adtivity/sdk/adtivity.js"></script>
 *   <script>
 *     const adtivity = Adtivity.init({ writeKey: "adt_w_...", host: "https://your-adtivity" });
 *     adtivity.page();
 *     adtivity.track("Signup", { plan: "pro" });
 *     adtivity.identify("user-42", { email: "ada@example.com" });
 *     adtivity.watchWallet(window.ethereum);  // wallet connects, chain changes, transactions (EIP-1193)
 *   </script>
 *
 * Events are queued with a message id (so a resend is stored once) and their own timestamp, and sent
 * in batches with sent_at (so the server corrects the device's clock): when `flushAt` are waiting,
 * every `flushIntervalMs`, and with navigator.sendBeacon when the page is hidden. A failed send is
 * put back in the queue (at most `maxQueue` events are kept).
 */
(function (global) {
  "use strict";

  function uuid() {
    if (global.crypto && global.crypto.randomUUID) return global.crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
    });
  }

  function stored(name, make) {
    try {
      var value = global.localStorage.getItem(name);
      if (!value) { value = make(); global.localStorage.setItem(name, value); }
      return value;
    } catch (e) {
      return make();
    }
  }

  function Client(options) {
    if (!options || !options.writeKey) throw new Error("Adtivity.init needs a writeKey");
    this.writeKey = options.writeKey;
    this.url = (options.host || "").replace(/\/$/, "") + "/v1/events";
    this.flushAt = options.flushAt || 20;
    this.maxQueue = options.maxQueue || 1000;
    this.queue = [];
    this.anonymousId = stored("adtivity.anonymous_id", uuid);
    this.userId = stored("adtivity.user_id", function () { return ""; });
    var self = this;
    this.timer = global.setInterval(function () { self.flush(); }, options.flushIntervalMs || 5000);
    if (global.document && global.document.addEventListener) {
      global.document.addEventListener("visibilitychange", function () {
        if (global.document.visibilityState === "hidden") self.flush(true);
      });
    }
  }

  Client.prototype.enqueue = function (event) {
    var location = global.location || {};
    var doc = global.document || {};
    event.message_id = uuid();
    event.timestamp = new Date().toISOString();
    event.anonymous_id = this.anonymousId;
    if (this.userId) event.user_id = this.userId;
    event.context = Object.assign({
      page: { url: location.href, path: location.pathname, referrer: doc.referrer, title: doc.title },
      locale: global.navigator && global.navigator.language
    }, event.context || {});
    this.queue.push(event);
    if (this.queue.length > this.maxQueue) this.queue.splice(0, this.queue.length - this.maxQueue);
    if (this.queue.length >= this.flushAt) this.flush();
  };

  Client.prototype.track = function (name, properties) {
    this.enqueue({ type: "track", name: name, properties: properties || {} });
  };

  Client.prototype.page = function (properties) {
    this.enqueue({ type: "page", properties: properties || {} });
  };

  Client.prototype.identify = function (userId, traits) {
    this.userId = String(userId);
    try { global.localStorage.setItem("adtivity.user_id", this.userId); } catch (e) { /* private mode */ }
    this.enqueue({ type: "identify", traits: traits || {} });
  };

  Client.prototype.walletConnect = function (address, chainId) {
    this.enqueue({ type: "wallet_connect", wallet_address: address, chain_id: String(chainId || "") });
  };

  Client.prototype.transaction = function (tx) {
    this.enqueue({ type: "transaction", tx_hash: tx.hash, from: tx.from, to: tx.to, value: tx.value,
                   chain_id: String(tx.chainId || ""), token: tx.token, status: tx.status || "submitted",
                   wallet_address: tx.from, contract_address: tx.contract });
  };

  /* Follows an EIP-1193 provider (window.ethereum): accounts (a connect each new account), chain
   * changes, and the transactions the page sends through it (status "submitted", with the hash). */
  Client.prototype.watchWallet = function (provider) {
    if (!provider || !provider.request) return;
    var self = this;
    var chainId = "";
    var account = "";
    function connected(accounts) {
      if (accounts && accounts[0] && accounts[0] !== account) {
        account = accounts[0];
        self.walletConnect(account, chainId);
      }
    }
    if (provider.on) {
      provider.on("accountsChanged", connected);
      provider.on("chainChanged", function (id) {
        chainId = String(parseInt(id, 16) || id);
        self.enqueue({ type: "chain_changed", wallet_address: account, chain_id: chainId });
      });
    }
    var request = provider.request.bind(provider);
    provider.request = function (args) {
      return request(args).then(function (result) {
        if (args && args.method === "eth_chainId") chainId = String(parseInt(result, 16));
        if (args && args.method === "eth_requestAccounts") connected(result);
        if (args && args.method === "eth_sendTransaction" && args.params && args.params[0]) {
          var tx = args.params[0];
          self.transaction({ hash: result, from: tx.from, to: tx.to,
                             value: tx.value ? String(BigInt(tx.value)) : "0", chainId: chainId, token: "native" });
        }
        return result;
      });
    };
    request({ method: "eth_chainId" }).then(function (id) { chainId = String(parseInt(id, 16)); }, function () {});
  };

  /* Sends what is queued; with `beacon` (page hidden) through navigator.sendBeacon, which outlives
   * the page but cannot set headers, so the write key travels in the body. */
  Client.prototype.flush = function (beacon) {
    if (!this.queue.length) return Promise.resolve();
    var events = this.queue.splice(0, this.queue.length);
    var body = JSON.stringify({ batch: events, sent_at: new Date().toISOString(), write_key: this.writeKey });
    var self = this;
    if (beacon && global.navigator && global.navigator.sendBeacon) {
      if (!global.navigator.sendBeacon(this.url, body)) this.queue = events.concat(this.queue);
      return Promise.resolve();
    }
    return global.fetch(this.url, { method: "POST", body: body, keepalive: true,
                                    headers: { "Content-Type": "application/json" } })
      .then(function (response) {
        if (response.status >= 500 || response.status === 429) throw new Error("retry later");
      })
      .catch(function () { self.queue = events.concat(self.queue).slice(-self.maxQueue); });
  };

  global.Adtivity = { init: function (options) { return new Client(options); } };
})(typeof window !== "undefined" ? window : globalThis);

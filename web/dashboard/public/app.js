/* Adtivity's built-in dashboard: plain JavaScript, no build step.
 *
 * It logs in through /v1/auth and reads the same API as any other client. Views live in the URL's
 * fragment (#/login, #/new-company, #/c/<company id>/<tab>), but for the two links mails carry:
 * /app/reset?token=... (choose a new password) and /app/invite?token=... (accept an invite, after
 * logging in or signing up). Everything is rendered as DOM nodes with
 * text content, never from HTML strings, so whatever an event carries shows as text.
 * The refresh token is kept in sessionStorage (it survives a reload, not the tab); the access token
 * only in memory.
 */
"use strict";
(() => {
  const TABS = [["analytics", "Analytics"], ["live", "Live"], ["web3", "Web3"], ["payments", "Payments"],
                ["team", "Team & keys"]];
  const TILES = [["events", "Events"], ["page_views", "Page views"], ["users", "Users"], ["new_users", "New users"],
                 ["sessions", "Sessions"], ["bounce_rate", "Bounce rate"], ["avg_session_seconds", "Avg. session"]];
  const SERIES = [["events", "Events"], ["page_views", "Page views"], ["users", "Users"], ["sessions", "Sessions"],
                  ["new_users", "New users"], ["returning_users", "Returning users"], ["wallets", "Wallets"],
                  ["bounce_rate", "Bounce rate"], ["avg_session_seconds", "Avg. session"]];
  const DIMENSIONS = [["page_path", "Pages"], ["referrer_domain", "Referrers"], ["utm_source", "UTM sources"],
                      ["utm_campaign", "UTM campaigns"], ["name", "Events"], ["type", "Event types"],
                      ["country", "Countries"], ["browser", "Browsers"], ["os", "Operating systems"],
                      ["device", "Devices"]];
  // The breakdown's dimensions as the query API names them, where the names differ.
  const QUERY_DIMENSIONS = { name: "event:name", type: "event:type" };
  const FILTER_LABELS = { page_path: "Page", referrer_domain: "Referrer", utm_source: "UTM source",
                          utm_campaign: "UTM campaign", "event:name": "Event", "event:type": "Event type",
                          country: "Country", browser: "Browser", os: "OS", device: "Device" };
  const RANKS = { viewer: 0, member: 1, admin: 2, owner: 3 };
  const LIVE_REFRESH_MS = 5000;
  const REFRESH_TOKEN = "adtivity.refresh";
  const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const numbers = new Intl.NumberFormat("en-US");

  const state = { access: null, refresh: sessionStorage.getItem(REFRESH_TOKEN), me: null, renewing: null,
                  timers: [], charts: [] };
  const $ = (selector) => document.querySelector(selector);

  function h(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  // ---- the API ----
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || `the server answered ${status}`);
      this.status = status;
    }
  }

  function remember(tokens) {
    state.access = tokens.access_token;
    state.refresh = tokens.refresh_token;
    sessionStorage.setItem(REFRESH_TOKEN, state.refresh);
  }

  function forget() {
    Object.assign(state, { access: null, refresh: null, me: null });
    sessionStorage.removeItem(REFRESH_TOKEN);
  }

  function renew() {
    // One refresh at a time: a refresh token works once, and a second use revokes the whole login.
    state.renewing = state.renewing || (async () => {
      const answer = await fetch("/v1/auth/refresh", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: state.refresh }),
      });
      if (!answer.ok) { forget(); return false; }
      remember(await answer.json());
      return true;
    })().finally(() => { state.renewing = null; });
    return state.renewing;
  }

  async function call(method, path, body) {
    const send = () => fetch(path, {
      method,
      headers: { ...(state.access ? { Authorization: `Bearer ${state.access}` } : {}),
                 ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let answer = await send();
    if (answer.status === 401 && state.refresh && await renew()) answer = await send();
    if (answer.status === 401) {
      forget();
      showLogin("Your session has ended; log in again.");
      throw new ApiError(401, null);
    }
    if (answer.status === 204) return null;
    const data = await answer.json().catch(() => null);
    if (!answer.ok) throw new ApiError(answer.status, data);
    return data;
  }

  // ---- formatting ----
  const count = (value) => (value === null || value === undefined ? "—" : numbers.format(value));
  const percent = (value) => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`);

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const whole = Math.round(seconds);
    if (whole < 60) return `${whole}s`;
    if (whole < 3600) return `${Math.floor(whole / 60)}m ${whole % 60}s`;
    return `${Math.floor(whole / 3600)}h ${Math.floor((whole % 3600) / 60)}m`;
  }

  function formatMetric(metric, value) {
    if (metric === "bounce_rate") return percent(value);
    if (metric === "avg_session_seconds") return duration(value);
    return count(value);
  }

  const moment = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

  function ago(iso) {
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    return seconds < 120 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
  }

  function localDate(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  }

  // ---- shared pieces of views ----
  function notify(message, kind = "error") {
    const notice = $("#notice");
    notice.textContent = message;
    notice.className = kind;
    notice.hidden = false;
    clearTimeout(notify.timer);
    notify.timer = setTimeout(() => { notice.hidden = true; }, 8000);
  }

  function reportError(error) {
    if (!(error instanceof ApiError && error.status === 401)) notify(error.message);
  }

  function tile(label, value, extra, attributes) {
    return h("div", { class: "tile", ...attributes }, h("div", { class: "label" }, label),
             h("div", { class: "value" }, value), extra || null);
  }

  function changeBadge(change, previous, metric) {
    const title = `previous period: ${formatMetric(metric, previous)}`;
    if (change === null || change === undefined) {
      return h("div", { class: "change", title }, previous === 0 ? "none in the previous period" : "no comparison");
    }
    const better = metric === "bounce_rate" ? change < 0 : change > 0;
    return h("div", { class: `change ${change === 0 ? "" : better ? "up" : "down"}`, title },
             `${change > 0 ? "+" : ""}${(change * 100).toFixed(1)}% vs previous`);
  }

  function table(id, headings, rows, emptyText = "Nothing in this period.") {
    return h("table", { id, class: "data" },
             h("thead", {}, h("tr", {}, headings.map((heading) => h("th", {}, heading)))),
             h("tbody", {}, rows.length ? rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))
                                        : h("tr", {}, h("td", { colspan: headings.length, class: "muted" }, emptyText))));
  }

  function section(title, ...children) {
    return h("section", { class: "panel" }, h("h2", {}, title), ...children);
  }

  function select(id, options, chosen, onchange) {
    return h("select", { id, onchange }, options.map(([value, label]) =>
      h("option", { value, selected: value === chosen }, label)));
  }

  function chart(box, labels, xs, ys, { bars = false, height = 240 } = {}) {
    const plot = new uPlot({
      width: Math.max(320, box.clientWidth || 800), height,
      series: [{}, { label: labels, stroke: "#3461e0", width: 2, fill: "rgba(52, 97, 224, 0.12)",
                     paths: bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined }],
      axes: [{}, { size: 60 }],
      legend: { show: false },
    }, [xs, ys], box);
    state.charts.push(plot);
    return plot;
  }

  function stopRefreshing() {
    state.timers.forEach(clearInterval);
    state.charts.forEach((plot) => plot.destroy());
    state.timers = [];
    state.charts = [];
  }

  function period() {
    const days = Number($("#period").value);
    const end = new Date();
    end.setDate(end.getDate() + 1);
    return { days, query: new URLSearchParams({ from: dateRange(days)[0], to: localDate(end), tz: TIME_ZONE }) };
  }

  // The same number of local days just before dateRange(days), as the analytics overview compares.
  function previousRange(days) {
    const last = new Date();
    last.setDate(last.getDate() - days);
    const first = new Date(last);
    first.setDate(first.getDate() - (days - 1));
    return [localDate(first), localDate(last)];
  }

  function relativeChange(value, previous) {
    return value === null || previous === null || !previous ? null : (value - previous) / previous;
  }

  function dateRange(days) {
    const start = new Date();
    start.setDate(start.getDate() - (days - 1));
    return [localDate(start), localDate(new Date())];
  }

  // ---- the analytics view's filters, kept in the URL: #/c/<id>/analytics?filters=<JSON>&segment=<id> ----
  function viewFilters() {
    const params = new URLSearchParams(location.hash.split("?")[1] || "");
    let filters;
    try { filters = JSON.parse(params.get("filters") || "[]"); } catch { filters = []; }
    return { filters: Array.isArray(filters) ? filters : [], segment: params.get("segment") || "" };
  }

  function showFiltered(view) {
    const params = new URLSearchParams();
    if (view.filters.length) params.set("filters", JSON.stringify(view.filters));
    if (view.segment) params.set("segment", view.segment);
    const path = location.hash.split("?")[0];
    location.hash = params.toString() ? `${path}?${params}` : path;
  }

  function withFilter(view, dimension, value) {
    const others = view.filters.filter((filter) => filter[1] !== dimension);
    return { ...view, filters: [...others, ["is", dimension, [value]]] };
  }

  const FILTERED_TABS = ["analytics", "web3", "payments"];
  const REVIEW_ROWS = 20;
  const filtersOfUrl = () => (location.hash.includes("?") ? `?${location.hash.split("?")[1]}` : "");

  /* A tab that takes the filter bar: draws it, and gives the period and the view's filters. With any
   * filter or segment set, `ask` queries the query API over the period, narrowed by them (and `more`
   * filters); without, it is null and the tab reads the analytics endpoints. */
  async function filteredTab(company, root) {
    const { days, query } = period();
    const view = viewFilters();
    root.append(await filterBar(company, view));
    const ask = view.filters.length || view.segment
      ? (body, more = []) => call("POST", `/v1/companies/${company.id}/query`, {
          date_range: dateRange(days), timezone: TIME_ZONE, limit: 100, ...body,
          filters: [...view.filters, ...(view.segment ? [["in_segment", view.segment]] : []), ...more] })
      : null;
    return { days, query, view, ask };
  }

  async function filterBar(company, view) {
    const segments = await call("GET", `/v1/companies/${company.id}/segments`);
    const chips = view.filters.map((filter, index) => h("span", { class: "chip", "data-dimension": filter[1] },
      `${FILTER_LABELS[filter[1]] || filter[1]} is ${filter[2].join(" or ")}`,
      h("button", { type: "button", class: "remove", title: "Remove this filter",
                    onclick: () => showFiltered({ ...view, filters: view.filters.filter((_, i) => i !== index) }) }, "×")));
    const picker = select("segment-picker", [["", "Everyone"], ...segments.items.map((s) => [s.id, s.name])],
                          view.segment, (event) => showFiltered({ ...view, segment: event.target.value }));
    return h("div", { id: "filter-bar", class: "filter-bar" }, h("label", {}, "Segment", picker), chips,
             chips.length ? null : h("span", { class: "muted" }, "Click a row of a breakdown to filter by it."));
  }

  // ---- views: login (or sign up), first company ----
  async function postCredentials(path, form) {
    const answer = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: form.email.value, password: form.password.value }),
    });
    const data = await answer.json().catch(() => null);
    if (!answer.ok) throw new ApiError(answer.status, data);
    return data;
  }

  function showLogin(message, signUp = false) {
    stopRefreshing();
    $("#controls").hidden = true;
    const error = h("p", { id: "login-error", class: "error" }, message || "");
    const form = h("form", { id: "login-form", class: "card" },
      h("h1", {}, signUp ? "Create your Adtivity account" : "Log in to Adtivity"),
      h("label", {}, "Email", h("input", { id: "email", name: "email", type: "email", required: true,
                                          autocomplete: "username" })),
      h("label", {}, "Password", h("input", { id: "password", name: "password", type: "password", required: true,
                                             autocomplete: signUp ? "new-password" : "current-password" })),
      h("button", { type: "submit" }, signUp ? "Create account" : "Log in"), error,
      h("p", { class: "muted" }, signUp ? "Have an account? " : "New here? ",
        h("a", { href: "#/login", id: "switch-mode", onclick: (event) => { event.preventDefault(); showLogin("", !signUp); } },
          signUp ? "Log in" : "Create an account")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        if (signUp) await postCredentials("/v1/auth/register", form);
        remember(await postCredentials("/v1/auth/login", form));
      } catch (failure) {
        error.textContent = failure.message;
        return;
      }
      state.me = null;
      route();
    });
    $("#view").replaceChildren(form);
  }

  function showNewCompany() {
    const form = h("form", { id: "company-form", class: "card" },
      h("h1", {}, "Create your first company"),
      h("p", { class: "muted" }, "A company holds your events, dashboards, members and API keys."),
      h("label", {}, "Name", h("input", { id: "company-name", required: true, maxlength: 200 })),
      h("button", { type: "submit" }, "Create company"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const company = await call("POST", "/v1/companies", { name: $("#company-name").value });
        state.me = null;
        location.hash = `#/c/${company.id}/team`;
      } catch (error) { reportError(error); }
    });
    $("#view").replaceChildren(form);
  }

  // ---- views: the links in mails ----
  const mailToken = () => new URLSearchParams(location.search).get("token") || "";

  function leaveMailLink(hash) {
    history.replaceState(null, "", `/app${hash}`);
  }

  function showPasswordReset() {
    stopRefreshing();
    $("#controls").hidden = true;
    const error = h("p", { id: "reset-error", class: "error" });
    const form = h("form", { id: "reset-form", class: "card" },
      h("h1", {}, "Choose a new password"),
      h("label", {}, "New password", h("input", { id: "new-password", name: "password", type: "password", required: true,
                                                 minlength: 10, autocomplete: "new-password" })),
      h("label", {}, "Repeat it", h("input", { id: "repeat-password", name: "repeat", type: "password", required: true,
                                              autocomplete: "new-password" })),
      h("button", { type: "submit" }, "Set password"), error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      if (form.password.value !== form.repeat.value) { error.textContent = "The two passwords differ."; return; }
      const answer = await fetch("/v1/auth/password-reset/confirm", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: mailToken(), new_password: form.password.value }),
      });
      if (!answer.ok) {
        const data = await answer.json().catch(() => null);
        error.textContent = answer.status === 400
          ? "This link has expired or was already used; ask for a new one."
          : new ApiError(answer.status, data).message;
        return;
      }
      forget();
      leaveMailLink("#/login");
      showLogin("Your password has been changed; log in with it.");
    });
    $("#view").replaceChildren(form);
  }

  async function acceptInvite() {
    try {
      const company = await call("POST", `/v1/invites/${encodeURIComponent(mailToken())}/accept`);
      state.me = null;
      leaveMailLink(`#/c/${company.id}/analytics`);
      notify(`You have joined ${company.name} as ${company.role}.`, "ok");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return false;
      leaveMailLink("#/");
      notify(error.status === 403 ? `${error.message}: log in with the invited email to accept it.`
                                  : `The invite could not be accepted: ${error.message}`);
    }
    return true;
  }

  // ---- the company's tabs ----
  /* Unfiltered, the figures come from the analytics endpoints (rollups); with filters or a segment,
   * from the query API, which narrows every figure to the slice. */
  async function analyticsTab(company, root) {
    const { days, query, view, ask } = await filteredTab(company, root);
    const filtered = ask !== null;
    const base = `/v1/companies/${company.id}/analytics`;

    if (filtered) {
      const metrics = TILES.map(([metric]) => metric);
      const [answer, earlier] = await Promise.all([ask({ metrics }),
                                                   ask({ metrics, date_range: previousRange(days) })]);
      const values = answer.results[0].metrics;
      const previous = earlier.results[0].metrics;
      root.append(section("Overview",
        h("div", { id: "overview", class: "tiles" }, TILES.map(([metric, label], index) =>
          tile(label, formatMetric(metric, values[index]),
               changeBadge(relativeChange(values[index], previous[index]), previous[index], metric),
               { "data-metric": metric }))),
        h("p", { class: "muted", id: "freshness" }, "Filtered: counted from the stored events, up to now.")));
    } else {
      const overview = await call("GET", `${base}/overview?${query}`);
      root.append(section("Overview",
        h("div", { id: "overview", class: "tiles" }, TILES.map(([metric, label]) => {
          const figure = overview.metrics[metric];
          return tile(label, formatMetric(metric, figure.value), changeBadge(figure.change, figure.previous, metric),
                      { "data-metric": metric });
        })),
        h("p", { class: "muted", id: "freshness" },
          overview.as_of ? `Computed ${moment(overview.as_of)}; complete up to ${moment(overview.complete_until)}.`
                         : "No rollup has run for this company yet.")));
      if (overview.metrics.events.value === 0) root.append(gettingStarted(company));
    }

    const interval = days === 1 ? "hour" : "day";
    const chartBox = h("div", { id: "trend-chart", class: "chart" });
    const dataBox = h("div", {});
    const points = async (metric) => {
      if (!filtered) {
        const answer = await call("GET", `${base}/timeseries?${query}&metric=${metric}&interval=${interval}`);
        return answer.points.map((point) => ({ at: new Date(point.start), value: point.value }));
      }
      const answer = await ask({ metrics: [metric], dimensions: [`time:${interval}`], limit: 1000 });
      const found = Object.fromEntries(answer.results.map((row) => [row.dimensions[0], row.metrics[0]]));
      const first = new Date(`${dateRange(days)[0]}T00:00:00`);
      return Array.from({ length: interval === "hour" ? 24 : days }, (_, index) => {
        const at = new Date(first);
        if (interval === "hour") at.setHours(index); else at.setDate(at.getDate() + index);
        const label = interval === "hour" ? `${localDate(at)} ${String(index).padStart(2, "0")}:00:00` : localDate(at);
        const ratio = metric === "bounce_rate" || metric === "avg_session_seconds";
        return { at, value: label in found ? found[label] : (ratio ? null : 0) };
      });
    };
    const drawTrend = async (metric) => {
      const shown = await points(metric);
      state.charts.forEach((plot) => plot.destroy());
      state.charts = [];
      chartBox.replaceChildren();
      chart(chartBox, SERIES.find(([name]) => name === metric)[1],
            shown.map((point) => point.at.getTime() / 1000), shown.map((point) => point.value));
      dataBox.replaceChildren(h("details", {}, h("summary", {}, "Data"),
        table("trend-data", ["Starts", "Value"], shown.map((point) => [
          h("time", { datetime: point.at.toISOString() }, point.at.toLocaleString()), formatMetric(metric, point.value)]))));
    };
    root.append(section("Trend", select("trend-metric", SERIES, "events", (event) =>
      drawTrend(event.target.value).catch(reportError)), chartBox, dataBox));
    await drawTrend("events");

    const breakdownBox = h("div", {});
    const drawBreakdown = async (dimension) => {
      const name = QUERY_DIMENSIONS[dimension] || dimension;
      let items;
      if (filtered) {
        const answer = await ask({ metrics: [dimension === "page_path" ? "page_views" : "events"], dimensions: [name],
                                   limit: 10 });
        items = answer.results.map((row) => ({ value: row.dimensions[0], amount: row.metrics[0] }))
          .filter((item) => item.amount > 0);
      } else {
        items = (await call("GET", `${base}/breakdown?${query}&dimension=${dimension}&limit=10`)).items;
      }
      const top = Math.max(1, ...items.map((item) => Number(item.amount)));
      breakdownBox.replaceChildren(table("breakdown-table", ["Value", "Count", ""], items.map((item) => {
        const bar = h("div", { class: "bar" });
        bar.style.width = `${(100 * Number(item.amount)) / top}%`;
        const value = item.value && item.value !== "(other)"
          ? h("a", { href: "#", class: "filter-by", title: "Filter the dashboard by this",
                     onclick: (event) => { event.preventDefault(); showFiltered(withFilter(view, name, item.value)); } },
              item.value)
          : item.value || "(none)";
        return [value, count(Number(item.amount)), bar];
      })));
    };
    root.append(section("Breakdown", select("breakdown-dimension", DIMENSIONS, "page_path", (event) =>
      drawBreakdown(event.target.value).catch(reportError)), breakdownBox));
    await drawBreakdown("page_path");
  }

  function gettingStarted(company) {
    const origin = location.origin;
    return section("Send your first events",
      h("p", {}, "Create a write key under Team & keys, then add the snippet to your site:"),
      h("pre", {}, h("code", {}, [
        `<script src="${origin}/sdk/adtivity.js"></script>`,
        "<script>",
        `  const adtivity = Adtivity.init({ writeKey: "adt_w_...", host: "${origin}" });`,
        "  adtivity.page();",
        "</script>"].join("\n"))),
      h("p", { class: "muted" }, "Segment and RudderStack SDKs work too: see ", h("a", { href: "/docs" }, "the API docs"),
        ". Figures appear after the next rollup (every few minutes); the Live tab shows them at once."));
  }

  async function liveTab(company, root) {
    const panel = h("div", { id: "live" });
    root.append(panel);
    const refresh = async () => {
      const live = await call("GET", `/v1/companies/${company.id}/realtime`);
      const status = live.stale
        ? h("p", { id: "live-status", class: "badge stale" },
            live.as_of ? `Stale: the last update was ${ago(live.as_of)}` : "Stale: no live data yet (is the streams process running?)")
        : h("p", { id: "live-status", class: "badge live" }, `Live: updated ${ago(live.as_of)}`);
      const users = live.active_users;
      const minuteBox = h("div", { id: "live-chart", class: "chart" });
      state.charts.forEach((plot) => plot.destroy());
      state.charts = [];
      panel.replaceChildren(status,
        section("Right now",
          h("div", { class: "tiles" },
            tile("Active users, 5 min", count(users.last_5_minutes)), tile("Active users, 30 min", count(users.last_30_minutes)),
            tile("Active users, 60 min", count(users.last_60_minutes)), tile("Users today", count(users.today)),
            tile("Events, last hour", count(live.last_hour.events), null, { id: "live-events" }),
            tile("Page views, last hour", count(live.last_hour.page_views)), tile("Events today", count(live.today.events)))),
        section("Events per minute", minuteBox),
        section("Top events, last hour", table("live-top-events", ["Event", "Count"],
          live.last_hour.top_events.map((item) => [item.name, count(item.count)]))),
        section("Top pages, last hour", table("live-top-pages", ["Page", "Views"],
          live.last_hour.top_pages.map((item) => [item.name, count(item.count)]))));
      chart(minuteBox, "Events", live.per_minute.map((minute) => Date.parse(minute.minute) / 1000),
            live.per_minute.map((minute) => minute.events), { bars: true, height: 160 });
    };
    await refresh();
    state.timers.push(setInterval(() => refresh().catch(reportError), LIVE_REFRESH_MS));
  }

  async function web3Tab(company, root) {
    const { days, query, ask } = await filteredTab(company, root);
    let web3;
    if (ask) {
      const transactions = [["is", "event:type", ["transaction"]]];
      const rows = async (body, more) => (await ask(body, more)).results;
      const [wallets, earlier, connects, byStatus, volume, contracts, topWallets, byState] = await Promise.all([
        rows({ metrics: ["wallets"] }), rows({ metrics: ["wallets"], date_range: previousRange(days) }),
        rows({ metrics: ["events"] }, [["is", "event:type", ["wallet_connect"]]]),
        rows({ metrics: ["transactions"], dimensions: ["chain", "transaction_status"] }, transactions),
        rows({ metrics: ["volume"], dimensions: ["chain", "token"] }, transactions),
        rows({ metrics: ["transactions"], dimensions: ["contract"], limit: 10 }, transactions),
        rows({ metrics: ["transactions"], dimensions: ["wallet"], limit: 10 }, transactions),
        rows({ metrics: ["transactions"], dimensions: ["chain", "verification"] }, transactions)]);
      const pairs = (found, names) => found.map((row) => Object.fromEntries(names.map((name, i) =>
        [name, i < 2 ? row.dimensions[i] : row.metrics[0]])));
      const top = (found) => found.map((row) => ({ address: row.dimensions[0], transactions: row.metrics[0] }));
      const [now, before] = [wallets[0].metrics[0], earlier[0].metrics[0]];
      web3 = { wallets: now, wallets_previous: before, wallets_change: relativeChange(now, before),
               wallet_connects: connects[0].metrics[0],
               transactions: pairs(byStatus, ["chain_id", "status", "count"]),
               volume: pairs(volume, ["chain_id", "token", "volume"]),
               top_contracts: top(contracts), top_wallets: top(topWallets),
               verified: { by_state: pairs(byState, ["chain_id", "state", "count"]) } };
    } else {
      const [answer, review] = await Promise.all([
        call("GET", `/v1/companies/${company.id}/analytics/web3?${query}`),
        call("GET", `/v1/companies/${company.id}/transactions?disagrees=true&limit=${REVIEW_ROWS}`)]);
      web3 = { ...answer, verified: { ...answer.verified, review: review.items } };
    }
    const change = changeBadge(web3.wallets_change, web3.wallets_previous, "wallets");
    root.append(
      section("Wallets", h("div", { id: "web3-tiles", class: "tiles" },
        tile("Distinct wallets", count(web3.wallets), change),
        tile("Wallet connects", count(web3.wallet_connects)))),
      section("Transactions", table("web3-transactions", ["Chain", "Status", "Transactions"],
        web3.transactions.map((row) => [row.chain_id, row.status, count(row.count)]))),
      section("Volume", table("web3-volume", ["Chain", "Token", "Volume"],
        web3.volume.map((row) => [row.chain_id, row.token, row.volume]))),
      section("Top contracts", table("web3-contracts", ["Contract", "Transactions"],
        web3.top_contracts.map((row) => [h("code", {}, row.address), count(row.transactions)]))),
      section("Top wallets", table("web3-wallets", ["Wallet", "Transactions"],
        web3.top_wallets.map((row) => [h("code", {}, row.address), count(row.transactions)]))),
      ...verifiedSections(web3.verified));
  }

  /* What the chain says of the reported transactions (docs/web3.md). A filtered view has the states of
   * the filtered transaction events only: the disagreements and the verified volume need the rollups. */
  function verifiedSections(verified) {
    const sections = [
      section("Verified on chain", table("web3-verified", ["Chain", "Chain says", "Transactions"],
        verified.by_state.map((row) => [row.chain_id, row.state, count(row.count)])))];
    if (verified.disagreements === undefined) return sections;
    sections.unshift(section("Chain check", h("div", { id: "web3-verified-tiles", class: "tiles" },
      tile("Reported transactions", count(verified.transactions)),
      tile("Chain disagrees", count(verified.disagreements)))));
    sections.push(
      section("Disagreements", table("web3-disagreements", ["Chain", "Chain says", "Transactions"],
        verified.disagreements_by_state.map((row) => [row.chain_id, row.state, count(row.count)]))),
      section("Verified volume", table("web3-verified-volume", ["Chain", "Token", "Volume"],
        verified.volume.map((row) => [row.chain_id, tokenCell(row), row.volume]))),
      section(`To review: transactions the chain contradicts (the first ${REVIEW_ROWS}, oldest report first)`,
        table("web3-review", ["Chain", "Transaction", "Client said", "Chain says"],
          verified.review.map((item) => [
            item.chain_id, h("code", {}, item.tx_hash),
            [item.reported.status, item.reported.value ? ` (value ${item.reported.value})` : ""],
            [item.state, item.chain.value_wei !== null ? ` (value ${item.chain.value_wei} wei)` : ""]]),
          "The chain has contradicted no reported transaction.")));
    return sections;
  }

  /* A token by its address (a symbol alone can be copied by any contract), with the symbol it gives. */
  function tokenCell(row) {
    if (row.token === "native") return "native";
    return [row.symbol ? `${row.symbol} ` : "", h("code", {}, row.token)];
  }

  async function paymentsTab(company, root) {
    const { query, ask } = await filteredTab(company, root);
    let payments;
    if (ask) {
      const [statuses, revenue] = await Promise.all([
        ask({ metrics: ["events"], dimensions: ["payment_status"] }),
        ask({ metrics: ["revenue"], dimensions: ["currency"] }, [["is", "event:type", ["payment"]]])]);
      const byStatus = Object.fromEntries(statuses.results.map((row) => [row.dimensions[0], row.metrics[0]]));
      const [started, completed] = [byStatus.started || 0, byStatus.completed || 0];
      payments = { started, completed, failed: byStatus.failed || 0, cancelled: byStatus.cancelled || 0,
                   funnel: [{}, { conversion: started ? completed / started : null }],
                   revenue: revenue.results.filter((row) => row.metrics[0] !== "0")
                     .map((row) => ({ currency: row.dimensions[0], amount: row.metrics[0] })) };
    } else {
      payments = await call("GET", `/v1/companies/${company.id}/analytics/payments?${query}`);
    }
    const conversion = payments.funnel[1].conversion;
    root.append(
      section("Payments", h("div", { id: "payment-tiles", class: "tiles" },
        tile("Started", count(payments.started)), tile("Completed", count(payments.completed)),
        tile("Failed", count(payments.failed)), tile("Cancelled", count(payments.cancelled)),
        tile("Started → completed", percent(conversion)))),
      section("Revenue (completed payments)", table("revenue", ["Currency", "Amount"],
        payments.revenue.map((row) => [row.currency, row.amount]))));
  }

  async function teamTab(company, root) {
    const rank = RANKS[company.role] ?? 0;
    const members = await call("GET", `/v1/companies/${company.id}/members?limit=200`);
    const membersPanel = section("Members", table("members", ["Email", "Role", "Joined"],
      members.items.map((member) => [member.email, member.role, moment(member.joined_at)])));
    if (rank >= RANKS.admin) membersPanel.append(inviteForm(company));
    root.append(membersPanel);
    if (rank >= RANKS.member) root.append(await keysPanel(company, rank >= RANKS.admin));
  }

  function inviteForm(company) {
    const form = h("form", { id: "invite-form", class: "inline" },
      h("input", { name: "email", type: "email", required: true, placeholder: "teammate@example.com" }),
      select("invite-role", [["viewer", "viewer"], ["member", "member"], ["admin", "admin"]], "member"),
      h("button", { type: "submit" }, "Invite"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await call("POST", `/v1/companies/${company.id}/invites`, { email: form.email.value, role: $("#invite-role").value });
        notify(`Invitation sent to ${form.email.value}.`, "ok");
        form.reset();
      } catch (error) { reportError(error); }
    });
    return form;
  }

  async function keysPanel(company, canManage) {
    const panel = section("API keys",
      h("p", { class: "muted" }, "Write keys go in your SDKs (they can only send events). Read keys read this " +
        "company's figures from your servers. A key is shown once, when it is made."));
    const revealed = h("div", { id: "new-key-slot" });
    const list = h("div", {});
    const reveal = (created) => {
      const field = h("input", { id: "new-key", readonly: true, value: created.key, size: 60 });
      const copy = h("button", { id: "copy-key", type: "button" }, "Copy");
      copy.addEventListener("click", async () => {
        field.select();
        try { await navigator.clipboard.writeText(created.key); } catch { document.execCommand("copy"); }
        copy.textContent = "Copied";
      });
      revealed.replaceChildren(h("div", { class: "reveal" },
        h("strong", {}, "Copy this key now: it will not be shown again."), field, copy,
        h("button", { type: "button", onclick: () => revealed.replaceChildren() }, "Done")));
    };
    const load = async () => {
      const keys = await call("GET", `/v1/companies/${company.id}/keys?limit=200`);
      list.replaceChildren(table("keys", ["Label", "Kind", "Key", "Created", "Last used", "Expires", ""],
        keys.items.map((key) => [key.label || "—", key.kind, h("code", {}, `adt_${key.kind[0]}_${key.public_id}_…`),
          moment(key.created_at), moment(key.last_used_at), moment(key.expires_at),
          canManage ? h("span", { class: "actions" },
            h("button", { type: "button", class: "rotate", "data-key": key.id, onclick: () => act(key, "rotate") }, "Rotate"),
            h("button", { type: "button", class: "revoke danger", "data-key": key.id, onclick: () => act(key, "revoke") }, "Revoke"))
                    : ""]), "No keys yet."));
    };
    const act = async (key, action) => {
      const label = key.label || key.public_id;
      const question = action === "rotate"
        ? `Rotate "${label}"? The old key keeps working for a grace period.`
        : `Revoke "${label}"? It stops working everywhere at once.`;
      if (!window.confirm(question)) return;
      try {
        if (action === "rotate") reveal(await call("POST", `/v1/companies/${company.id}/keys/${key.id}/rotate`, {}));
        else await call("DELETE", `/v1/companies/${company.id}/keys/${key.id}`);
        await load();
      } catch (error) { reportError(error); }
    };
    if (canManage) {
      const form = h("form", { id: "key-form", class: "inline" },
        select("key-kind", [["write", "write key (SDKs)"], ["read", "read key (servers)"]], "write"),
        h("input", { id: "key-label", name: "label", placeholder: "label, e.g. production site", maxlength: 100 }),
        h("button", { type: "submit" }, "Create key"));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          reveal(await call("POST", `/v1/companies/${company.id}/keys`, { kind: $("#key-kind").value, label: form.label.value }));
          form.reset();
          await load();
        } catch (error) { reportError(error); }
      });
      panel.append(form);
    }
    panel.append(revealed, list);
    await load();
    return panel;
  }

  const TAB_VIEWS = { analytics: analyticsTab, live: liveTab, web3: web3Tab, payments: paymentsTab, team: teamTab };

  // ---- routing ----
  function showControls(company) {
    const picker = $("#company");
    picker.replaceChildren(...state.me.companies.map((c) => h("option", { value: c.id, selected: c.id === company.id }, c.name)));
    $("#who").textContent = `${state.me.user.email} (${company.role})`;
    $("#controls").hidden = false;
  }

  async function route() {
    stopRefreshing();
    if (location.pathname === "/app/reset") { showPasswordReset(); return; }
    const inviting = location.pathname === "/app/invite";
    if (!state.access && !(state.refresh && await renew())) {
      showLogin(inviting ? "Log in, or create an account with the invited email, to accept the invite." : "");
      return;
    }
    if (inviting && !(await acceptInvite())) return;
    try {
      state.me = state.me || await call("GET", "/v1/me");
    } catch (error) { reportError(error); return; }
    const [, kind, companyId, tab] = location.hash.split("?")[0].split("/");
    const companies = state.me.companies;
    if (!companies.length) { $("#controls").hidden = true; showNewCompany(); return; }
    const company = companies.find((c) => c.id === companyId);
    if (kind !== "c" || !company || !TAB_VIEWS[tab]) {
      location.replace(`#/c/${(company || companies[0]).id}/${TAB_VIEWS[tab] ? tab : "analytics"}`);
      return;
    }
    showControls(company);
    const root = h("div", { id: `tab-${tab}`, class: "tab" });
    $("#view").replaceChildren(
      h("nav", { class: "tabs" }, TABS.map(([name, label]) =>
        h("a", { href: `#/c/${company.id}/${name}${FILTERED_TABS.includes(name) ? filtersOfUrl() : ""}`,
                 class: name === tab ? "active" : null }, label))),
      root);
    try {
      await TAB_VIEWS[tab](company, root);
      root.dataset.loaded = "true";
    } catch (error) { reportError(error); }
  }

  function currentTab() {
    return location.hash.split("?")[0].split("/")[3] || "analytics";
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#company").addEventListener("change", (event) => { location.hash = `#/c/${event.target.value}/${currentTab()}`; });
    $("#period").addEventListener("change", route);
    $("#logout").addEventListener("click", async () => {
      await call("POST", "/v1/auth/logout").catch(() => null);
      forget();
      history.replaceState(null, "", "#/login");
      showLogin("You have logged out.");
    });
    window.addEventListener("hashchange", route);
    window.addEventListener("resize", () => state.charts.forEach((plot) => {
      plot.setSize({ width: Math.max(320, plot.root.parentNode.clientWidth), height: plot.height });
    }));
    route();
  });
})();

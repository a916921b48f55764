/* The API reference page (/docs): renders /openapi.json as text nodes, grouped by tag. */
"use strict";
fetch('/openapi.json').then(r => r.json()).then(doc => {
  document.getElementById('intro').textContent = doc.info.description;
  const byTag = {};
  for (const [path, ops] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(ops)) (byTag[op.tags[0]] ||= []).push([path, method, op]);
  const root = document.getElementById('ops'); root.textContent = '';
  for (const tag of Object.keys(byTag).sort()) {
    const h = document.createElement('h2'); h.textContent = tag; root.append(h);
    for (const [path, method, op] of byTag[tag]) {
      const d = document.createElement('details'); d.className = 'op';
      const s = document.createElement('summary');
      const m = document.createElement('span'); m.className = `m ${method}`; m.textContent = method;
      const code = document.createElement('code'); code.textContent = path;
      s.append(m, ' ', code, ' ', op.summary || '');
      d.append(s);
      if (op.requestBody) {
        const pre = document.createElement('pre');
        const content = op.requestBody.content['application/json'];
        pre.textContent = JSON.stringify(content.example || content.schema, null, 2);
        d.append(pre);
      }
      root.append(d);
    }
  }
});

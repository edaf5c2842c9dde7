// Layout check of the HTML report, run by Chromium (tests/report/test_report.cpp, ReportBrowser): the test
// appends this script to a copy of report.html, loads it in headless Chromium with --dump-dom, and
// reads the JSON this script leaves in the pre element "apricot-layout" it appends to the body. For
// every chart (svg element) it gives the box in page pixels and lists every problem a reader sees:
//   - "text/text": two labels overlap;
//   - "text/data": a label overlaps plotted data (elements of class "d": bars, boxes, whiskers,
//     points, curves and their markers);
//   - "clipped": a label reaches outside its chart;
// and the resources the page loaded (it must load none: the report is one self-contained file).
(function () {
  'use strict';
  const PAD = 0.5;  // pixels two boxes may share (anti-aliased edges) before they count as overlapping
  const out = {charts: [], problems: [], resources: [], page: {}};
  const box = (e) => {
    const r = e.getBoundingClientRect();
    return {left: r.left + scrollX, top: r.top + scrollY, right: r.right + scrollX, bottom: r.bottom + scrollY};
  };
  const overlap = (a, b) =>
    a.left < b.right - PAD && b.left < a.right - PAD && a.top < b.bottom - PAD && b.top < a.bottom - PAD;
  const inside = (p, b) => p.x > b.left + PAD && p.x < b.right - PAD && p.y > b.top + PAD && p.y < b.bottom - PAD;
  const label = (t) => JSON.stringify(t.textContent.trim());
  const round = (b) => [b.left, b.top, b.right, b.bottom].map((v) => Math.round(v * 10) / 10);

  // A polyline or line as page-pixel segments (its bounding box would cover the whole plot).
  function segments(e) {
    const m = e.getScreenCTM();
    const at = (x, y) => {
      const p = new DOMPoint(x, y).matrixTransform(m);
      return {x: p.x + scrollX, y: p.y + scrollY};
    };
    if (e.tagName === 'line')
      return [[at(e.x1.baseVal.value, e.y1.baseVal.value), at(e.x2.baseVal.value, e.y2.baseVal.value)]];
    const pts = Array.from(e.points, (p) => at(p.x, p.y));
    const segs = [];
    for (let i = 1; i < pts.length; ++i) segs.push([pts[i - 1], pts[i]]);
    return segs;
  }
  // Whether a segment passes through a box: sampled every half pixel, exact enough for a layout check.
  function crosses(seg, b) {
    const [p, q] = seg, n = Math.max(1, Math.ceil(2 * Math.hypot(q.x - p.x, q.y - p.y)));
    for (let i = 0; i <= n; ++i) {
      const t = i / n;
      if (inside({x: p.x + t * (q.x - p.x), y: p.y + t * (q.y - p.y)}, b)) return true;
    }
    return false;
  }

  document.querySelectorAll('svg').forEach((svg, i) => {
    const title = svg.querySelector('title');
    const name = title ? title.textContent : 'chart ' + i;
    const frame = box(svg);
    const texts = Array.from(svg.querySelectorAll('text')).filter((t) => t.textContent.trim() !== '');
    const marks = Array.from(svg.querySelectorAll('.d'));
    out.charts.push({name, box: round(frame), texts: texts.length, marks: marks.length});
    const tb = texts.map(box);
    texts.forEach((t, a) => {
      if (tb[a].left < frame.left - PAD || tb[a].top < frame.top - PAD || tb[a].right > frame.right + PAD ||
          tb[a].bottom > frame.bottom + PAD)
        out.problems.push({chart: name, kind: 'clipped', what: label(t), box: round(tb[a]), frame: round(frame)});
      for (let b = a + 1; b < texts.length; ++b)
        if (overlap(tb[a], tb[b]))
          out.problems.push({chart: name, kind: 'text/text', what: label(t) + ' and ' + label(texts[b]),
                             box: round(tb[a]), other: round(tb[b])});
      for (const m of marks) {
        const hit = m.tagName === 'polyline' || m.tagName === 'line' ? segments(m).some((s) => crosses(s, tb[a]))
                                                                      : overlap(tb[a], box(m));
        if (hit)
          out.problems.push({chart: name, kind: 'text/data', what: label(t) + ' over a ' + m.tagName,
                             box: round(tb[a]), other: round(box(m))});
      }
    });
  });
  out.resources = performance.getEntriesByType('resource').map((r) => r.name);
  out.page = {width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight};
  const pre = document.createElement('pre');
  pre.id = 'apricot-layout';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();

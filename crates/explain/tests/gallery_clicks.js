// Drives a gallery as a person would: clicks the filters and the column headers, then
// reports what the page shows, as JSON in <pre id="click-test-result">. Appended to a copy of
// an index.html by tests/browser.rs; on a page without a sortable table it reports the images.
window.addEventListener('load', () => {
  const rows = () => [...document.querySelectorAll('#gallery tbody tr')];
  const shown = () => rows().filter(r => r.style.display !== 'none');
  const header = name => [...document.querySelectorAll('#gallery th')]
    .find(th => th.textContent.startsWith(name));
  const confidences = () => shown().map(r => parseFloat(r.children[6].dataset.value));
  const button = label => [...document.querySelectorAll('button')]
    .find(b => b.textContent === label);
  const report = {};
  report.rows = rows().length;
  report.images = [...document.images].length;
  report.broken_images = [...document.images]
    .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.getAttribute('src'));
  const scale = document.getElementById('colour-scale');
  report.scale_width = scale ? scale.getBoundingClientRect().width : 0;
  report.scale_background = scale ? getComputedStyle(scale).backgroundImage.slice(0, 40) : '';
  const finish = () => {
    const out = document.createElement('pre');
    out.id = 'click-test-result';
    out.textContent = JSON.stringify(report);
    document.body.appendChild(out);
  };
  if (!document.getElementById('gallery')) return finish();
  for (const filter of ['incorrect', 'correct', 'all']) {
    const b = button(filter);
    if (!b) { report['filter_' + filter] = null; continue; }
    b.click();
    report['filter_' + filter] = {
      shown: shown().length,
      classes: [...new Set(shown().map(r => r.className))],
      showing: document.getElementById('showing').textContent,
    };
  }
  header('confidence').click();
  report.sorted_once = { values: confidences(), says: document.getElementById('sorted').textContent,
                         header: header('confidence').textContent };
  header('confidence').click();
  report.sorted_twice = { values: confidences(), says: document.getElementById('sorted').textContent,
                          header: header('confidence').textContent };
  header('#').click();
  report.by_number = { names: shown().map(r => r.children[0].textContent),
                       confidence_header: header('confidence').textContent };
  finish();
});

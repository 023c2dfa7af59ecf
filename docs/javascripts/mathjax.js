// MathJax 3 settings for the two kinds of page that carry formulas, re-typeset on every
// page Material's instant navigation loads.
//
// - Chapters (Markdown): pymdownx.arithmatex (generic mode) wraps each formula in an
//   element of class "arithmatex", as \(...\) or \[...\].
// - Labs (percent scripts rendered by mkdocs-jupyter): nbconvert leaves the Markdown
//   cells' math as TeX inside ".jp-RenderedMarkdown", rewriting \(...\) to $...$ and
//   \[...\] to $$...$$.
//
// MathJax searches those elements only, never the rest of the page: a `$` anywhere else
// (a shell prompt in a code block, a printed output, the navigation) stays text. Inside
// them, <code> and <pre> are skipped as usual, and \$ is a literal dollar.
const MATH_CONTAINERS = ".arithmatex, .jp-RenderedMarkdown";

window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  startup: {
    typeset: false, // the subscription below typesets the math containers, and only them
  },
};

document$.subscribe(() => {
  // Chain on startup.promise: it waits for MathJax to be ready, and anyone awaiting it
  // afterwards (the browser test does) knows this page's formulas are typeset.
  MathJax.startup.promise = MathJax.startup.promise.then(() => {
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    return MathJax.typesetPromise([...document.querySelectorAll(MATH_CONTAINERS)]);
  });
});

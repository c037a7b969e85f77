// The course pages write their formulas in plain Unicode: no MathJax is loaded (the site works offline).

// Renders /v2/openapi.json with the vendored Redoc; nothing is fetched from elsewhere.
"use strict";
Redoc.init("/v2/openapi.json", {
  hideDownloadButton: false,
  expandResponses: "200",
  theme: { typography: { fontFamily: "system-ui, sans-serif", headings: { fontFamily: "system-ui, sans-serif" } } },
}, document.getElementById("redoc"));

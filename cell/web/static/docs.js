// Swagger UI for /openapi.json from this server's own copy of its files. Requests made
// from the page ("Try it out") carry the token of the user signed in to the pages.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  requestInterceptor: (req) => {
    const token = sessionStorage.getItem("token");
    if (token) req.headers.Authorization = "Bearer " + token;
    return req;
  },
});

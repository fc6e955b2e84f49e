// The API reference at /docs: Swagger UI rendering this origin's /openapi.json.
//
// A file rather than an inline script, so the page's Content-Security-Policy can stay
// `script-src 'self'`. Nothing leaves the origin: no validator badge (it would send the
// document to validator.swagger.io), and "Try it out" calls this same API.
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  tryItOutEnabled: false,
  persistAuthorization: false,
});

// Starts Swagger UI with the options the page carries in a JSON block: the page's CSP runs no inline script.
window.addEventListener("load", () => {
  const options = JSON.parse(document.getElementById("viewer-options").textContent);
  window.ui = SwaggerUIBundle({ ...options, dom_id: "#swagger-ui" });
});

/**
 * GET /docs: the API reference, Swagger UI over /openapi.json. Its script
 * and stylesheet come from the swagger-ui-dist package and are served by the
 * service itself: the page loads nothing from another origin (no CDN, no
 * fonts; the online validator badge, Swagger UI's one outside call, is off).
 *
 * swagger-ui-dist: maintained by the Swagger project, renders OpenAPI 3.1,
 * and ships a prebuilt bundle, so nothing is built here. (Its install-time
 * analytics dependency is turned off by `scarfSettings` in package.json.)
 */
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import type { Express } from 'express';
import { NotFoundError } from '../errors.ts';
import { DOCS_ASSETS } from './openapi.ts';

const SWAGGER_UI_DIR = dirname(
  createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'),
);

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>paystate API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/docs.js"></script>
  </body>
</html>
`;

// A file rather than an inline script, so a Content-Security-Policy of
// 'self' (a later change) needs no exception.
const INIT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  validatorUrl: null,
  deepLinking: true,
});
`;

export function serveDocsPage(app: Express): void {
  app.get('/docs', (_req, res) => {
    res.type('html').send(PAGE);
  });
  app.get('/docs/:asset', (req, res, next) => {
    const asset = req.params.asset;
    if (!(DOCS_ASSETS as readonly string[]).includes(asset)) {
      next(new NotFoundError(`no docs asset ${asset}`));
      return;
    }
    if (asset === 'docs.js') {
      res.type('text/javascript').send(INIT);
      return;
    }
    res.type(asset.endsWith('.css') ? 'text/css' : 'text/javascript');
    res.sendFile(join(SWAGGER_UI_DIR, asset), { maxAge: '1h' }, (error?: Error) => {
      if (error !== undefined) next(error);
    });
  });
}

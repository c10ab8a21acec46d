// Types of scripts/console-api.mjs, for the tests that import it.
type OpenApiDocument = {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, unknown> };
};
export function actionsOf(document: OpenApiDocument): string[];
export function scopesOf(document: OpenApiDocument): string[];
export function typeOf(schema: unknown): string;
export function renderConsoleApi(document: OpenApiDocument): string;

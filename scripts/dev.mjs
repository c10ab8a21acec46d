// `npm start`: the gateway on http://127.0.0.1:8787 with the simulator as its upstream
// (or the upstream named in .dev.vars), local D1 migrated, ADMIN_TOKEN generated if missing.
import { startStack } from "./stack.mjs";

const stack = await startStack({ port: Number(process.env.PORT ?? 8787) });
const upstream = stack.simulatorUrl ? `the simulator at ${stack.simulatorUrl}` : stack.upstreamUrl;
console.log(`
  Gateway ready on ${stack.gatewayUrl} (upstream: ${upstream})
  Admin token (from .dev.vars): ${stack.adminToken}

  First call — create a tenant:
    curl -s -X POST ${stack.gatewayUrl}/admin/tenants \\
      -H "Authorization: Bearer ${stack.adminToken}" -H "content-type: application/json" \\
      -d '{"name":"acme"}'
  Then follow "A first flow" in README.md. API docs: ${stack.gatewayUrl}/docs
`);
const shutdown = () => {
  stack.stop();
  process.exit(0);
};
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
for (const child of stack.children) {
  child.on("exit", (code) => {
    console.error(`a server exited (code ${code}); stopping`);
    shutdown();
  });
}

import type { ConnectRouter } from "@connectrpc/connect";
import type { Engine } from "../../engine/engine.js";
import { adminServiceRoutes, type ServerFacts } from "./admin-service.js";
import { sessionServiceRoutes } from "./session-service.js";

export type { ServerFacts } from "./admin-service.js";

/** Every service the daemon serves. */
export function routes(engine: Engine, facts: ServerFacts): (router: ConnectRouter) => void {
  const session = sessionServiceRoutes(engine);
  const admin = adminServiceRoutes(engine, facts);
  return (router) => {
    session(router);
    admin(router);
  };
}

import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { AdminService } from "../../../gen/hotplex/v1/admin_service_pb.js";
import { SessionService } from "../../../gen/hotplex/v1/session_service_pb.js";
import type { Engine } from "../../engine/engine.js";
import { adminServiceRoutes, type ServerFacts } from "./admin-service.js";
import { healthServiceRoutes } from "./health-service.js";
import { reflectionServiceRoutes } from "./reflection-service.js";
import { sessionServiceRoutes } from "./session-service.js";

export type { ServerFacts } from "./admin-service.js";

/** Every service the daemon serves. */
export function routes(engine: Engine, facts: ServerFacts): (router: ConnectRouter) => void {
  const session = sessionServiceRoutes(engine);
  const admin = adminServiceRoutes(engine, facts);
  // Health reports on hotplex's own services (and "", the daemon as a whole).
  const health = healthServiceRoutes(engine, [SessionService, AdminService]);
  return (router) => {
    session(router);
    admin(router);
    health(router);
    // Reflection describes whatever the router serves, itself included.
    reflectionServiceRoutes(() => servicesOf(router))(router);
  };
}

function servicesOf(router: ConnectRouter): DescService[] {
  return [...new Set(router.handlers.map((handler) => handler.service))];
}

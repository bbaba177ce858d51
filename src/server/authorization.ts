import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import type { Permission, Principal } from "../security/principal.js";
import { authKey, bodyProblemKey, principalKey } from "./context.js";

// Every method of every service, and the one permission it needs. The Record types make
// a method added to a proto fail the type check until it is listed here.
const SESSION_SERVICE: Record<keyof typeof SessionService.method, Permission> = {
  execute: "session.write",
  subscribe: "session.read",
  getSnapshot: "session.read",
  stopSession: "session.write",
  interrupt: "session.write",
  getSessionStats: "session.read",
  listSessions: "session.read",
  deleteSession: "session.write",
  listProviders: "session.read",
  respondPermission: "session.write",
  steer: "session.write",
  cancelTurn: "session.write",
  changeSettings: "session.write",
  listModels: "session.read",
  resetSession: "session.write",
  forkSession: "session.write",
  setTitle: "session.write",
};

const ADMIN_SERVICE: Record<keyof typeof AdminService.method, Permission> = {
  listAllSessions: "admin",
  stopTenantSession: "admin",
  deleteTenantSession: "admin",
  getServerInfo: "admin",
  drain: "admin",
  listAuditEvents: "admin",
  setRuleBypass: "admin",
};

/** "hotplex.v1.SessionService/Execute" → the permission it needs. */
export const METHOD_PERMISSIONS: ReadonlyMap<string, Permission> = new Map([
  ...Object.entries(SESSION_SERVICE).map(([name, permission]) => [methodKey(SessionService.method[name as keyof typeof SESSION_SERVICE]), permission] as const),
  ...Object.entries(ADMIN_SERVICE).map(([name, permission]) => [methodKey(AdminService.method[name as keyof typeof ADMIN_SERVICE]), permission] as const),
]);

/** The name a method has in the permission table and the audit log. */
export function methodKey(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/** A refusal worth an audit entry: a valid credential called a method its roles do not allow. */
export interface PermissionDenial {
  principal: Principal;
  method: string;
  permission: Permission | undefined;
}

/**
 * Lets a call through only with a valid credential whose roles grant the method's
 * permission (a method missing from the table is refused), and sets the principal for
 * the handler. Also refuses a call whose body the adapter found malformed.
 */
export function createAuthorizationInterceptor(onDenied?: (denial: PermissionDenial) => void): Interceptor {
  return (next) => async (req) => {
    const auth = req.contextValues.get(authKey);
    if (!auth.principal) {
      throw new ConnectError(
        auth.failure === "missing"
          ? "this daemon requires a credential: send Authorization: Bearer <token>"
          : "the credential is not valid (send Authorization: Bearer <token> with a token from the server config)",
        Code.Unauthenticated,
      );
    }
    const principal = auth.principal;
    const method = methodKey(req.method);
    const permission = METHOD_PERMISSIONS.get(method);
    if (!permission || !principal.permissions.has(permission)) {
      onDenied?.({ principal, method, permission });
      throw new ConnectError(
        `credential "${principal.name}" (roles: ${principal.roles.join(", ")}) may not call ${req.method.name}` +
          (permission ? `: it needs the ${permission} permission` : ""),
        Code.PermissionDenied,
      );
    }
    const problem = req.contextValues.get(bodyProblemKey);
    if (problem) {
      throw new ConnectError(problem.message, problem.code === "invalid_argument" ? Code.InvalidArgument : Code.ResourceExhausted);
    }
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}

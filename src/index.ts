// The package's entry: hotplex as a library (createEngine), the API's types, and the
// client helpers for programs that talk to a hotplexd instead.
export {
  createEngine,
  type EngineOptions,
  type EventSubscription,
  type ExecuteOptions,
  HotplexEngine,
  type SessionConfigInit,
  type Snapshot,
  type SubscribeOptions,
} from "./engine/create-engine.js";
export type { ClientDecision } from "./engine/engine.js";
export { HotplexError, type HotplexErrorCode } from "./errors.js";
export { StoreOpenError } from "./store/sqlite-store.js";
export { type ProviderSettings, providerSettings } from "./providers/registry.js";
export * from "./client/index.js";
export * from "../gen/hotplex/v1/event_pb.js";
export * from "../gen/hotplex/v1/interaction_pb.js";
export * from "../gen/hotplex/v1/session_pb.js";
export * from "../gen/hotplex/v1/session_service_pb.js";
export * from "../gen/hotplex/v1/admin_service_pb.js";

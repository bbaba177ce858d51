// Helpers for programs that talk to a hotplexd through the generated Connect client
// (`createClient(SessionService, transport)`): a Subscribe that survives disconnects and
// restarts, and typed handling of the events.
export {
  DEFAULT_RETRY_POLICY,
  type ResumingSubscribeOptions,
  ResumingSubscription,
  resumingSubscribe,
  type RetryInfo,
  type RetryPolicy,
  SequenceError,
  type SubscribeClient,
  SubscriptionState,
} from "./resuming-subscribe.js";
export { type CollectedTurn, collectTurn, type EventSource, eventsOf, type StatusClient, waitForStatus, type WaitForStatusOptions } from "./event-helpers.js";

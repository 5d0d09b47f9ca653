// The official Authsignal Node SDK (@authsignal/node, pinned in
// package.json) against the emulator: every Server API method the SDK has
// that the emulator covers. Run by authsignal/node_sdk_test.go, which starts
// the emulator and completes the hosted challenge for the script:
//
//   AUTHSIGNAL_API_URL=http://127.0.0.1:port/v1 AUTHSIGNAL_SECRET=… node sdk.mjs
//
// Protocol on stdio: the script prints {"challengeUrl": "…"} on a line and
// waits for a line holding the token the page hands back; it prints
// {"done": true} when every check passed. Any failure exits non-zero.
import assert from "node:assert/strict";
import readline from "node:readline";
import { Authsignal, AuthsignalError } from "@authsignal/node";

const apiUrl = process.env.AUTHSIGNAL_API_URL;
const apiSecretKey = process.env.AUTHSIGNAL_SECRET;
assert.ok(apiUrl && apiSecretKey, "AUTHSIGNAL_API_URL and AUTHSIGNAL_SECRET are required");

const client = new Authsignal({ apiSecretKey, apiUrl, retries: 0 });
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const step = (name) => process.stderr.write(`node sdk: ${name}\n`);

const userId = "node-user";

step("enrollVerifiedAuthenticator");
const enrolled = await client.enrollVerifiedAuthenticator({
  userId,
  attributes: { verificationMethod: "SMS", phoneNumber: "+64270000000" },
});
assert.equal(enrolled.authenticator.verificationMethod, "SMS");
assert.ok(enrolled.authenticator.userAuthenticatorId);

step("getAuthenticators");
const authenticators = await client.getAuthenticators({ userId });
assert.equal(authenticators.length, 1);
assert.equal(authenticators[0].userAuthenticatorId, enrolled.authenticator.userAuthenticatorId);

step("getUser");
const user = await client.getUser({ userId });
assert.equal(user.isEnrolled, true);
assert.equal(user.email, undefined);
assert.deepEqual(user.enrolledVerificationMethods, ["SMS"]);

step("updateUser, every attribute the SDK has");
const updated = await client.updateUser({
  userId,
  attributes: {
    email: "node@example.com",
    emailVerified: true,
    phoneNumber: "+64270000000",
    phoneNumberVerified: false,
    username: "node@example.com",
    displayName: "Node User",
    custom: { foo: "bar" },
    locale: "en-NZ",
  },
});
assert.equal(updated.email, "node@example.com");
assert.equal(updated.emailVerified, true);
assert.equal(updated.phoneNumberVerified, false);
assert.equal(updated.displayName, "Node User");
assert.equal(updated.custom.foo, "bar");

step("track, every attribute the SDK has");
const tracked = await client.track({
  userId,
  action: "signIn",
  attributes: {
    idempotencyKey: "node-key-1",
    redirectUrl: "https://app.example/callback",
    redirectToSettings: false,
    ipAddress: "192.0.2.10",
    userAgent: "node-sdk-test",
    deviceId: "device-1",
    scope: "read:authenticators",
    email: "node@example.com",
    phoneNumber: "+64270000000",
    username: "node@example.com",
    custom: { amount: 10 },
    challengeId: "challenge-1",
    locale: "en-NZ",
    customDomain: "auth.example.com",
  },
});
assert.equal(tracked.state, "CHALLENGE_REQUIRED");
assert.equal(tracked.idempotencyKey, "node-key-1");
assert.equal(tracked.isEnrolled, true);
assert.ok(tracked.url && tracked.token);

step("validateChallenge before the challenge");
const before = await client.validateChallenge({ token: tracked.token });
assert.equal(before.isValid, false);
assert.equal(before.state, "CHALLENGE_REQUIRED");
assert.equal(before.action, "signIn");
assert.equal(before.userId, userId);

step("the Go test completes the challenge");
console.log(JSON.stringify({ challengeUrl: tracked.url }));
const { value: token } = await lines.next();
assert.ok(token, "no token on stdin");

step("validateChallenge after the challenge");
const after = await client.validateChallenge({ token: token.trim(), userId, action: "signIn" });
assert.equal(after.isValid, true);
assert.equal(after.state, "CHALLENGE_SUCCEEDED");
assert.equal(after.idempotencyKey, "node-key-1");
assert.equal(after.verificationMethod, "SMS");
const wrongUser = await client.validateChallenge({ token: token.trim(), userId: "someone-else" });
assert.equal(wrongUser.isValid, false);

step("getAction");
const action = await client.getAction({ userId, action: "signIn", idempotencyKey: "node-key-1" });
assert.equal(action.state, "CHALLENGE_SUCCEEDED");
assert.ok(action.createdAt && action.stateUpdatedAt);

step("updateAction CHALLENGE_REQUIRED to REVIEW_REQUIRED, as the SDK's own tests do");
const second = await client.track({ userId, action: "withdraw", attributes: { custom: { amount: 5 } } });
assert.equal(second.state, "CHALLENGE_REQUIRED");
await client.updateAction({
  userId,
  action: "withdraw",
  idempotencyKey: second.idempotencyKey,
  attributes: { state: "REVIEW_REQUIRED" },
});
const reviewed = await client.getAction({ userId, action: "withdraw", idempotencyKey: second.idempotencyKey });
assert.equal(reviewed.state, "REVIEW_REQUIRED");

step("queryUserActions");
const all = await client.queryUserActions({ userId });
assert.deepEqual(all.map((a) => a.actionCode).sort(), ["signIn", "withdraw"]);
const byCode = await client.queryUserActions({
  userId,
  actionCodes: ["signIn", "other"],
  state: "CHALLENGE_SUCCEEDED",
  fromDate: new Date(Date.now() - 3600 * 1000).toISOString(),
});
assert.equal(byCode.length, 1);
assert.equal(byCode[0].idempotencyKey, "node-key-1");

step("queryUsers");
const found = await client.queryUsers({ email: "node@example.com", limit: 10 });
assert.deepEqual(found.users.map((u) => u.userId), [userId]);
const none = await client.queryUsers({ username: "nobody" });
assert.deepEqual(none.users, []);

step("deleteAuthenticator");
await client.deleteAuthenticator({ userId, userAuthenticatorId: enrolled.authenticator.userAuthenticatorId });
assert.deepEqual(await client.getAuthenticators({ userId }), []);

step("deleteUser");
await client.deleteUser({ userId });
const deleted = await client.getUser({ userId });
assert.equal(deleted.isEnrolled, false);
assert.equal(deleted.email, undefined);

step("a wrong secret is an AuthsignalError 401");
const wrong = new Authsignal({ apiSecretKey: "wrong-secret", apiUrl, retries: 0 });
await assert.rejects(wrong.getUser({ userId }), (err) => {
  assert.ok(err instanceof AuthsignalError);
  assert.equal(err.statusCode, 401);
  assert.equal(err.errorCode, "unauthorized");
  assert.equal(
    err.errorDescription,
    "The request is unauthorized. Check that your API key and region base URL are correctly configured.",
  );
  return true;
});

console.log(JSON.stringify({ done: true }));
process.exit(0);

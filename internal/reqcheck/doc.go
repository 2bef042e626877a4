// Package reqcheck checks the fields of the command requests an agent takes
// from the bus (vm.restore, checkpoint.capture, ...) before anything acts on
// them: a VM name that could reach xl as an option, an image key that could
// leave the store, a size or a path no honest supervisor sends.
//
// Each check returns nil or a *FieldError naming the field, the refused
// value (quoted on one line, cut if long) and the reason; Join gathers a
// request's problems into one error of one line. The agent answers it as
// command.CodeBadRequest, which the supervisor does not retry.
//
// Rules, where they live:
//   - names of VMs and groups: Name (names.go), the events schema's name
//     pattern, which the supervisor's inventory also applies;
//   - image keys: ImageKey, store.ValidateKey's rule (the store checks it
//     again on every call);
//   - checksums, sizes, host paths, leader terms, checkpoint numbers:
//     fields.go.
//
// The package holds no state; every function is safe to call concurrently.
package reqcheck

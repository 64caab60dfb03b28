package s3store

import (
	"context"
	"sync/atomic"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
)

// attemptCounter reports each HTTP attempt to onAttempt (Options.OnAttempt):
// a counter is put in the context once per operation, before the retry
// loop, and incremented by a step that runs inside the loop, once per
// attempt.
func attemptCounter(onAttempt func(op string, attempt int)) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ampfsAttemptCounter",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				return next.HandleInitialize(context.WithValue(ctx, attemptsKey{}, new(atomic.Int32)), in)
			}), middleware.Before)
		if err != nil {
			return err
		}
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("ampfsAttempt",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if n, ok := ctx.Value(attemptsKey{}).(*atomic.Int32); ok {
					onAttempt(awsmiddleware.GetOperationName(ctx), int(n.Add(1)))
				}
				return next.HandleFinalize(ctx, in)
			}), "Retry", middleware.After)
	}
}

type attemptsKey struct{}

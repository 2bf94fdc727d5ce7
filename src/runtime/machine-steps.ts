import {
  createActor,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type EventFromLogic,
} from 'xstate';

/**
 * The machine decides, the engine acts: `getInitialSnapshot` and `transition`
 * run with one inert scope per machine whose executor only collects the
 * actions of the call in progress (type and resolved params). Nothing runs:
 * no effect, no timer, no emit. This is what xstate's own `transition()` does,
 * without building a throwaway actor on every call.
 *
 * Machines that invoke or spawn child actors are not supported: their
 * children would live in this scope and nowhere durable.
 */

export interface CollectedAction {
  readonly type: string;
  readonly params?: unknown;
}

export interface Step {
  readonly snapshot: AnyMachineSnapshot;
  readonly actions: readonly CollectedAction[];
}

type Scope<TMachine extends AnyStateMachine> = Parameters<TMachine['transition']>[2];

export class MachineSteps<TMachine extends AnyStateMachine> {
  // Stryker disable next-line ArrayDeclaration: collect() sets a fresh array before anything is collected
  private collected: CollectedAction[] = [];
  private scope: Scope<TMachine> | undefined;

  constructor(private readonly machine: TMachine) {}

  initial(input: unknown): Step {
    return this.collect(
      (scope) => this.machine.getInitialSnapshot(scope, input) as AnyMachineSnapshot,
    );
  }

  /** An event the current state ignores returns the same snapshot and no actions. */
  transition(snapshot: AnyMachineSnapshot, event: EventFromLogic<TMachine>): Step {
    return this.collect(
      (scope) => this.machine.transition(snapshot as never, event, scope) as AnyMachineSnapshot,
    );
  }

  private collect(compute: (scope: Scope<TMachine>) => AnyMachineSnapshot): Step {
    // A fresh array per call: the one returned belongs to the caller.
    const actions: CollectedAction[] = [];
    this.collected = actions;
    const snapshot = compute(this.inertScope());
    return { snapshot, actions };
  }

  /** Built on the first call, then reused. */
  private inertScope(): Scope<TMachine> {
    this.scope ??= this.newScope();
    return this.scope;
  }

  private newScope(): Scope<TMachine> {
    // The actor is never started; its constructor computes an initial
    // snapshot without input and keeps any error to itself.
    const self = createActor(this.machine);
    return {
      self,
      // Stryker disable next-line StringLiteral: transition() never reads the scope's id
      id: '',
      // Stryker disable next-line StringLiteral: transition() never reads the scope's sessionId
      sessionId: '',
      system: self.system,
      logger: () => undefined,
      defer: () => undefined,
      emit: () => undefined,
      stopChild: () => undefined,
      actionExecutor: (action: CollectedAction) => {
        this.collected.push({ type: action.type, params: action.params });
      },
    };
  }
}

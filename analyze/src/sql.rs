//! The one path SQL text takes, however it arrives (`query`'s argument or
//! file, the prompt, stdin, a detection's file): parsed into statements,
//! each planned and executed in turn (a `CREATE TABLE` step must exist
//! before the statement after it is planned), each result handed on.
//! On Ballista a `CREATE TABLE x AS` step is kept where the executors read
//! it ([`crate::fleet::Steps`]), found in the session's config.

use crate::error::Error;
use datafusion::common::DFSchema;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{DdlStatement, EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement;
use std::collections::VecDeque;
use std::sync::Arc;

/// The statements of one SQL text, run one after the other.
pub struct Statements {
    pending: VecDeque<Statement>,
    /// The tables its `CREATE TABLE` steps made (or were about to), so a
    /// caller can drop its own steps without touching anyone else's.
    created: Vec<String>,
}

impl Statements {
    /// Parses `sql`; SQL without a statement is an error (an empty string
    /// would otherwise succeed silently).
    pub fn parse(sql: &str) -> Result<Statements, Error> {
        let statements = datafusion::sql::parser::DFParser::parse_sql(sql)?;
        if statements.is_empty() {
            return Err(Error::NoStatement);
        }
        Ok(Statements {
            pending: statements,
            created: Vec::new(),
        })
    }

    /// The tables the `CREATE TABLE` statements run so far made.
    pub fn created(&self) -> &[String] {
        &self.created
    }

    /// Plans and executes the next statement in `ctx`: its result, and
    /// whether it was the last one.
    pub async fn next(&mut self, ctx: &SessionContext) -> Option<Result<(DataFrame, bool), Error>> {
        let statement = self.pending.pop_front()?;
        let last = self.pending.is_empty();
        let run = async {
            let state = ctx.state();
            let plan = state.statement_to_plan(statement).await?;
            let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(step)) = &plan else {
                return Ok((ctx.execute_logical_plan(plan).await?, last));
            };
            // Named only once made: a name that was taken is not ours.
            let name = step.name.to_string();
            let done = match state.config().get_extension::<crate::fleet::Steps>() {
                None => ctx.execute_logical_plan(plan).await?,
                Some(steps) => {
                    steps.materialize(ctx, step).await?;
                    DataFrame::new(
                        state,
                        LogicalPlan::EmptyRelation(EmptyRelation {
                            produce_one_row: false,
                            schema: Arc::new(DFSchema::empty()),
                        }),
                    )
                }
            };
            self.created.push(name);
            Ok((done, last))
        };
        Some(run.await)
    }
}

//! The one path SQL text takes, however it arrives (`query`'s argument or
//! file, the prompt, stdin, a detection's file): parsed into statements,
//! each planned and executed in turn (a `CREATE TABLE` step must exist
//! before the statement after it is planned), each result handed on.

use crate::error::Error;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement;
use std::collections::VecDeque;

/// The statements of one SQL text, run one after the other.
pub struct Statements(VecDeque<Statement>);

impl Statements {
    /// Parses `sql`; SQL without a statement is an error (an empty string
    /// would otherwise succeed silently).
    pub fn parse(sql: &str) -> Result<Statements, Error> {
        let statements = datafusion::sql::parser::DFParser::parse_sql(sql)?;
        if statements.is_empty() {
            return Err(Error::NoStatement);
        }
        Ok(Statements(statements))
    }

    /// Plans and executes the next statement in `ctx`: its result, and
    /// whether it was the last one.
    pub async fn next(&mut self, ctx: &SessionContext) -> Option<Result<(DataFrame, bool), Error>> {
        let statement = self.0.pop_front()?;
        let last = self.0.is_empty();
        let run = async {
            let plan = ctx.state().statement_to_plan(statement).await?;
            Ok((ctx.execute_logical_plan(plan).await?, last))
        };
        Some(run.await)
    }
}
